"""The Data layer: Caffe-written and Caffe-exact LMDBs of real MNIST digits, LevelDB, wrap-around,
several data layers in one net, batches of changing shape, force_color/force_gray, prefetching that
hides a slow loader behind compute, and the bad inputs (also as cct train's one-line errors)."""
import gc
import gzip
import logging
import os
import threading
import time

import cv2
import lmdb
import numpy as np
import pytest

import cct
from cct import cli
from cct.errors import DataError
from cct.io import parse_text
from cct.log import logger
from cct.proto import caffe_pb2
from cct.tools import convert_mnist

SCALE = np.float32(0.00390625)


def _read_idx(path):
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, '>u4', count=ndim, offset=4))
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.fixture(scope='module')
def mnist(shared):
    folder = os.path.join(shared, 'data', 'mnist')
    return (_read_idx(os.path.join(folder, 't10k-images-idx3-ubyte.gz')),
            _read_idx(os.path.join(folder, 't10k-labels-idx1-ubyte.gz')))


def data_net(source, batch_size, backend='LMDB', transform='', phase=caffe_pb2.TEST, extra='',
             dtype=np.float32, tops=('data', 'label')):
    text = '''layer { name: "mnist" type: "Data" %s
                      transform_param { %s } data_param { source: "%s" batch_size: %d %s %s } }
           ''' % (' '.join('top: "%s"' % t for t in tops), transform, source, batch_size,
                  'backend: %s' % backend if backend else '', extra)
    return cct.Net(parse_text(text, caffe_pb2.NetParameter()), phase, dtype=dtype)


def write_lmdb(path, records):
    """An LMDB written with plain lmdb calls, as Caffe's db_lmdb writes one."""
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for key, value in records:
            txn.put(key, value)
    env.close()


def caffe_datum_bytes(image, label):
    """A Datum serialized with plain protobuf calls, set field by field as convert_mnist_data
    sets it."""
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = 1, image.shape[0], image.shape[1]
    datum.data = image.tobytes()
    datum.label = int(label)
    return datum.SerializeToString()


def test_reads_the_lmdb_real_caffe_wrote(shared, mnist):
    images, labels = mnist
    net = data_net(os.path.join(shared, 'data', 'mnist_test_lmdb_by_caffe'), 2000,
                   transform='scale: 0.00390625')
    assert net.blobs['data'].shape == (2000, 1, 28, 28)
    assert net.blobs['label'].shape == (2000,)
    for start in range(0, 10000, 2000):
        net.forward()
        np.testing.assert_array_equal(net.blobs['data'].data[:, 0],
                                      images[start:start + 2000] * SCALE)
        np.testing.assert_array_equal(net.blobs['label'].data, labels[start:start + 2000])


def test_reads_caffe_exact_datum_bytes_and_wraps_inside_a_batch(tmp_path, mnist, caplog):
    images, labels = mnist
    write_lmdb(tmp_path / 'db', [(b'%08d' % i, caffe_datum_bytes(images[i], labels[i]))
                                 for i in range(50)])
    order = np.arange(96) % 50
    # Capture from before the net exists: its prefetch thread may read (and log the wrap of)
    # several batches ahead as soon as it is built.
    with caplog.at_level(logging.INFO, logger='cct'):
        logger.propagate = True
        try:
            net = data_net(tmp_path / 'db', 32, dtype=np.float64)
            for batch in range(3):
                net.forward()
                wanted = order[32 * batch:32 * (batch + 1)]
                np.testing.assert_array_equal(net.blobs['data'].data[:, 0], images[wanted])
                np.testing.assert_array_equal(net.blobs['label'].data, labels[wanted])
        finally:
            logger.propagate = False
    assert 'Restarting data prefetching from start.' in caplog.text
    assert net.blobs['data'].data.dtype == np.float64


def test_leveldb_written_by_convert_mnist(tmp_path, shared, mnist):
    images, labels = mnist
    folder = os.path.join(shared, 'data', 'mnist')
    convert_mnist.convert_dataset(os.path.join(folder, 't10k-images-idx3-ubyte.gz'),
                                  os.path.join(folder, 't10k-labels-idx1-ubyte.gz'),
                                  str(tmp_path / 'mnist_leveldb'), 'leveldb')
    # No backend: LEVELDB is Caffe's default.
    net = data_net(tmp_path / 'mnist_leveldb', 5000, backend='', transform='scale: 0.00390625')
    net.forward()
    net.forward()
    np.testing.assert_array_equal(net.blobs['data'].data[:, 0], images[5000:] * SCALE)
    np.testing.assert_array_equal(net.blobs['label'].data, labels[5000:])


def test_several_data_layers_read_independently(tmp_path, mnist):
    images, labels = mnist
    write_lmdb(tmp_path / 'a', [(b'%08d' % i, caffe_datum_bytes(images[i], labels[i]))
                                for i in range(20)])
    write_lmdb(tmp_path / 'b', [(b'%08d' % i, caffe_datum_bytes(images[100 + i], labels[100 + i]))
                                for i in range(20)])
    text = '''
    layer { name: "a1" type: "Data" top: "a1"
            data_param { source: "%(a)s" batch_size: 4 backend: LMDB } }
    layer { name: "a2" type: "Data" top: "a2" top: "l2"
            data_param { source: "%(a)s" batch_size: 6 backend: LMDB } }
    layer { name: "b" type: "Data" top: "b"
            data_param { source: "%(b)s" batch_size: 5 backend: LMDB } }
    ''' % dict(a=tmp_path / 'a', b=tmp_path / 'b')
    net = cct.Net(parse_text(text, caffe_pb2.NetParameter()), caffe_pb2.TRAIN)
    for step in range(2):
        net.forward()
        np.testing.assert_array_equal(net.blobs['a1'].data[:, 0], images[4 * step:4 * step + 4])
        np.testing.assert_array_equal(net.blobs['a2'].data[:, 0], images[6 * step:6 * step + 6])
        np.testing.assert_array_equal(net.blobs['l2'].data, labels[6 * step:6 * step + 6])
        np.testing.assert_array_equal(net.blobs['b'].data[:, 0],
                                      images[100 + 5 * step:100 + 5 * step + 5])


class SlowLoader:
    """Wraps a loader so every batch takes ``delay`` seconds to load."""

    def __init__(self, loader, delay):
        self.loader, self.delay = loader, delay

    def first_shape(self):
        return self.loader.first_shape()

    def load(self, batch):
        time.sleep(self.delay)
        self.loader.load(batch)


def test_prefetch_hides_loading_behind_compute(tmp_path, mnist, monkeypatch):
    """Loading takes 20 ms a batch, the 'net' 40 ms: after the first batches are ready, forward
    never waits. The same loader with no compute in between makes forward wait."""
    images, labels = mnist
    write_lmdb(tmp_path / 'db', [(b'%08d' % i, caffe_datum_bytes(images[i], labels[i]))
                                 for i in range(64)])
    from cct.layers import data as data_module
    original = data_module.DataLayer.make_loader
    monkeypatch.setattr(data_module.DataLayer, 'make_loader',
                        lambda self: SlowLoader(original(self), 0.02))
    slow_consumer = data_net(tmp_path / 'db', 16, extra='prefetch: 3')
    time.sleep(0.2)  # the thread fills its 3 batches
    layer = slow_consumer.layers[0]
    for _ in range(10):
        slow_consumer.forward()
        time.sleep(0.04)  # the net's compute
    assert layer.wait_seconds < 0.02
    fast_consumer = data_net(tmp_path / 'db', 16, extra='prefetch: 3')
    for _ in range(10):
        fast_consumer.forward()
    assert fast_consumer.layers[0].wait_seconds > 0.1


@pytest.mark.parametrize('source, message', [
    ('missing_db', 'LMDB database not found: .*missing_db'),
    ('empty_db', 'the database .*empty_db is empty'),
])
def test_missing_and_empty_databases(tmp_path, source, message):
    write_lmdb(tmp_path / 'empty_db', [])
    with pytest.raises(DataError, match="Layer 'mnist' \\(type Data\\): " + message):
        data_net(tmp_path / source, 4)


def test_wrong_backend_is_named(tmp_path, mnist):
    images, labels = mnist
    write_lmdb(tmp_path / 'db', [(b'0', caffe_datum_bytes(images[0], labels[0]))])
    with pytest.raises(DataError, match='is an LMDB database, not a LevelDB one'):
        data_net(tmp_path / 'db', 4, backend='')


def test_shape_change_inside_a_batch_names_the_key(tmp_path, mnist):
    images, labels = mnist
    records = [(b'%08d' % i, caffe_datum_bytes(images[i], labels[i])) for i in range(6)]
    records[4] = (b'00000004', caffe_datum_bytes(images[4][:20], labels[4]))
    write_lmdb(tmp_path / 'db', records)
    net = data_net(tmp_path / 'db', 3)
    net.forward()
    with pytest.raises(DataError, match="record '00000004' of .*db: the image is 1 x 20 x 28, "
                                        'the batch 1 x 28 x 28'):
        net.forward()


def test_threads_end_with_their_net(tmp_path, mnist):
    images, labels = mnist
    write_lmdb(tmp_path / 'db', [(b'0', caffe_datum_bytes(images[0], labels[0]))])
    before = set(threading.enumerate())

    def started_here():
        # Threads other tests left behind may end meanwhile; only this test's own count.
        return [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for _ in range(5):
        net = data_net(tmp_path / 'db', 4)
        net.forward()
    assert len(started_here()) >= 1
    del net
    gc.collect()
    deadline = time.time() + 5
    while started_here() and time.time() < deadline:
        time.sleep(0.01)
    assert started_here() == []


def test_undecodable_encoded_image_names_the_key(tmp_path):
    good = caffe_pb2.Datum(data=cv2.imencode('.png', np.zeros((4, 4), np.uint8))[1].tobytes(),
                           encoded=True).SerializeToString()
    bad = caffe_pb2.Datum(data=b'not an image', encoded=True).SerializeToString()
    write_lmdb(tmp_path / 'db', [(b'a', good), (b'b', bad)])
    net = data_net(tmp_path / 'db', 2)
    with pytest.raises(DataError, match="record 'b' of .*: could not decode the encoded image"):
        net.forward()


def test_corrupt_record_names_the_key(tmp_path, mnist):
    images, labels = mnist
    good = caffe_datum_bytes(images[0], labels[0])
    write_lmdb(tmp_path / 'db', [(b'00000000', good), (b'00000001', good[:-300]),
                                 (b'00000002', good)])
    net = data_net(tmp_path / 'db', 3)
    with pytest.raises(DataError, match="Layer 'mnist' \\(type Data\\): record '00000001' of "
                                        '.*db: corrupt record, not a Datum'):
        net.forward()
    with pytest.raises(DataError, match="record '00000001'"):
        net.forward()  # the failure stays: every later forward reports the same record


def test_a_datum_whose_bytes_do_not_fill_its_shape_names_the_key(tmp_path, mnist):
    images, labels = mnist
    short = caffe_pb2.Datum(channels=1, height=28, width=28, data=images[1].tobytes()[:500])
    write_lmdb(tmp_path / 'db', [(b'a', caffe_datum_bytes(images[0], labels[0])),
                                 (b'b', short.SerializeToString())])
    net = data_net(tmp_path / 'db', 2)
    with pytest.raises(DataError, match="record 'b' of .*db: Datum holds 500 data bytes, its "
                                        'shape 1 x 28 x 28 needs 784'):
        net.forward()


def test_shape_change_between_batches_reshapes_the_net(tmp_path, mnist):
    """The first datum of each batch sets its shape (Caffe's load_batch), and the layers after
    the Data layer reshape to it on that forward."""
    images, labels = mnist
    small = [np.ascontiguousarray(images[i][:20, :14]) for i in range(3, 6)]
    write_lmdb(tmp_path / 'db',
               [(b'%08d' % i, caffe_datum_bytes(images[i], labels[i])) for i in range(3)] +
               [(b'%08d' % (3 + i), caffe_datum_bytes(small[i], labels[3 + i])) for i in range(3)])
    text = '''layer { name: "mnist" type: "Data" top: "data" top: "label"
                      data_param { source: "%s" batch_size: 3 backend: LMDB } }
              layer { name: "flat" type: "Flatten" bottom: "data" top: "flat" }''' % (
        tmp_path / 'db')
    net = cct.Net(parse_text(text, caffe_pb2.NetParameter()), caffe_pb2.TEST)
    net.forward()
    assert net.blobs['flat'].shape == (3, 784)
    net.forward()
    assert net.blobs['data'].shape == (3, 1, 20, 14)
    assert net.blobs['flat'].shape == (3, 280)
    np.testing.assert_array_equal(net.blobs['data'].data[:, 0], np.stack(small))
    np.testing.assert_array_equal(net.blobs['label'].data, labels[3:6])
    net.forward()  # wrapped: the full-size records again
    assert net.blobs['flat'].shape == (3, 784)
    np.testing.assert_array_equal(net.blobs['data'].data[:, 0], images[:3])


def encoded_datum_bytes(image_hwc, label):
    return caffe_pb2.Datum(data=cv2.imencode('.png', image_hwc)[1].tobytes(), label=label,
                           encoded=True).SerializeToString()


def test_force_color_and_force_gray_decode_encoded_records(tmp_path, mnist, caplog):
    images, labels = mnist
    colour = np.random.default_rng(4).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    write_lmdb(tmp_path / 'grey', [(b'0', encoded_datum_bytes(images[0], labels[0]))])
    write_lmdb(tmp_path / 'colour', [(b'0', encoded_datum_bytes(colour, 1))])
    as_stored = data_net(tmp_path / 'grey', 1)
    as_colour = data_net(tmp_path / 'grey', 1, transform='force_color: true')
    as_grey = data_net(tmp_path / 'colour', 1, transform='force_gray: true')
    for net in (as_stored, as_colour, as_grey):
        net.forward()
    assert as_stored.blobs['data'].shape == (1, 1, 28, 28)
    np.testing.assert_array_equal(as_stored.blobs['data'].data[0, 0], images[0])
    assert as_colour.blobs['data'].shape == (1, 3, 28, 28)
    for channel in range(3):
        np.testing.assert_array_equal(as_colour.blobs['data'].data[0, channel], images[0])
    assert as_grey.blobs['data'].shape == (1, 1, 28, 28)
    grey = cv2.imdecode(cv2.imencode('.png', colour)[1], cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(as_grey.blobs['data'].data[0, 0], grey)
    # On raw records the options do nothing; Caffe logs an error and goes on.
    write_lmdb(tmp_path / 'raw', [(b'0', caffe_datum_bytes(images[0], labels[0]))])
    with caplog.at_level(logging.ERROR, logger='cct'):
        logger.propagate = True
        try:
            raw = data_net(tmp_path / 'raw', 1, transform='force_color: true')
            raw.forward()
        finally:
            logger.propagate = False
    assert 'force_color and force_gray only for encoded datum' in caplog.text
    assert raw.blobs['data'].shape == (1, 1, 28, 28)
    np.testing.assert_array_equal(raw.blobs['data'].data[0, 0], images[0])


def test_a_bad_database_stops_cct_train_with_one_line(tmp_path, mnist, capsys):
    """A record that fails on the prefetch thread mid-training, and a missing database, end
    ``cct train`` with exit status 1 and an error naming the database (and the record)."""
    images, labels = mnist
    good = caffe_datum_bytes(images[0], labels[0])
    write_lmdb(tmp_path / 'db', [(b'%08d' % i, good) for i in range(5)] +
               [(b'00000005', b'\x08\x01garbage')])
    net = tmp_path / 'net.prototxt'
    solver = tmp_path / 'solver.prototxt'
    for source, expected in (
            (tmp_path / 'db', "record '00000005' of %s: corrupt record" % (tmp_path / 'db')),
            (tmp_path / 'none', 'LMDB database not found: %s' % (tmp_path / 'none'))):
        net.write_text('''
            layer { name: "mnist" type: "Data" top: "data" top: "label"
                    data_param { source: "%s" batch_size: 4 backend: LMDB } }
            layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
                    inner_product_param { num_output: 10 } }
            layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label"
                    top: "loss" }''' % source)
        solver.write_text('net: "%s" base_lr: 0.01 lr_policy: "fixed" max_iter: 3 '
                          'snapshot_after_train: false' % net)
        assert cli.main(['train', '--solver=%s' % solver]) == 1
        err = capsys.readouterr().err
        assert expected in err
        assert 'Traceback' not in err
