"""``cct convert_imageset`` and ``cct compute_image_mean``: Caffe's keys and Datum bytes, encoded
records, --gray/--resize/--shuffle/--check_size, both backends read back by the Data layer (raw and
encoded records give identical pixels), the mean file Caffe would write (from LMDB and LevelDB), and
the progress bar shown on a terminal only."""
import io
import logging
import sys

import cv2
import numpy as np
import pytest

import cct
from cct import cli, rng
from cct.data.db import Reader
from cct.io import parse_text
from cct.log import GlogFormatter, logger
from cct.proto import caffe_pb2
from cct.tools.compute_image_mean import compute_mean


@pytest.fixture
def log_text():
    """The text cct logs during the test."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(GlogFormatter())
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.fixture
def images(tmp_path):
    """Four colour PNGs and a JPEG, 12 x 10, and the list naming them (one with spaces)."""
    gen = np.random.default_rng(0)
    root = tmp_path / 'root'
    root.mkdir()
    pictures = {}
    names = ['a.png', 'with space.png', 'c.PNG', 'd.png', 'e.jpg']
    for i, name in enumerate(names):
        picture = gen.integers(0, 256, (12, 10, 3), dtype=np.uint8)
        cv2.imwrite(str(root / name), picture)
        pictures[name] = cv2.imread(str(root / name))  # the JPEG as decoded
    (tmp_path / 'list.txt').write_text(''.join('%s %d\n' % (n, i) for i, n in enumerate(names)))
    return tmp_path, names, pictures


def convert(tmp_path, db, *flags):
    return cli.main(['convert_imageset', *flags, str(tmp_path / 'root') + '/',
                     str(tmp_path / 'list.txt'), str(tmp_path / db)])


def records(path, backend='lmdb'):
    return list(Reader(path, backend).items())


def test_raw_records_are_caffes_bytes(images):
    tmp_path, names, pictures = images
    assert convert(tmp_path, 'db') == 0
    stored = records(tmp_path / 'db')
    assert [k.decode() for k, _ in stored] == ['%08d_%s' % (i, n) for i, n in enumerate(names)]
    for i, (name, (_, value)) in enumerate(zip(names, stored)):
        # CVMatToDatum + set_label, field by field (encoded is set to false explicitly).
        datum = caffe_pb2.Datum()
        datum.channels, datum.height, datum.width = 3, 12, 10
        datum.data = pictures[name].transpose(2, 0, 1).tobytes()
        datum.encoded = False
        datum.label = i
        assert value == datum.SerializeToString()


def test_encoded_records(images):
    tmp_path, names, pictures = images
    assert convert(tmp_path, 'enc', '--encoded') == 0
    for name, (_, value) in zip(names, records(tmp_path / 'enc')):
        datum = caffe_pb2.Datum.FromString(value)
        assert datum.encoded and not datum.HasField('channels')
        assert datum.data == (tmp_path / 'root' / name).read_bytes()  # the file's own bytes
    assert convert(tmp_path, 'png', '--encode_type=png', '--resize_height=6',
                   '--resize_width=5') == 0
    for name, (_, value) in zip(names, records(tmp_path / 'png')):
        datum = caffe_pb2.Datum.FromString(value)
        decoded = cv2.imdecode(np.frombuffer(datum.data, np.uint8), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(decoded, cv2.resize(pictures[name], (5, 6)))


def test_gray_shuffle_and_leveldb(images):
    tmp_path, names, pictures = images
    rng.set_random_seed(3)
    assert convert(tmp_path, 'grey', '--gray', '-shuffle', '--backend', 'leveldb') == 0
    stored = records(tmp_path / 'grey', 'leveldb')
    keyed = [k.decode().split('_', 1) for k, _ in stored]
    assert [int(index) for index, _ in keyed] == list(range(5))
    assert sorted(name for _, name in keyed) == sorted(names)
    assert [name for _, name in keyed] != names
    for (_, name), (_, value) in zip(keyed, stored):
        datum = caffe_pb2.Datum.FromString(value)
        assert (datum.channels, datum.label) == (1, names.index(name))
        grey = cv2.imread(str(tmp_path / 'root' / name), cv2.IMREAD_GRAYSCALE)
        assert datum.data == grey.tobytes()


def test_missing_images_are_skipped_and_check_size(images, log_text, capsys):
    tmp_path, names, _ = images
    with open(tmp_path / 'list.txt', 'a') as f:
        f.write('gone.png 7\n')
    assert convert(tmp_path, 'db') == 0
    assert 'Could not open or find file %s/root/gone.png' % tmp_path in log_text.getvalue()
    assert 'Processed 5 files.' in log_text.getvalue()
    cv2.imwrite(str(tmp_path / 'root' / 'd.png'), np.zeros((4, 4, 3), np.uint8))
    assert convert(tmp_path, 'db2', '--check_size') == 1
    assert 'line 4 (d.png): Incorrect data field size 48' in capsys.readouterr().err


def data_net(source, backend, transform):
    text = '''layer { name: "d" type: "Data" top: "data" top: "label"
                      transform_param { %s } data_param { source: "%s" batch_size: 5
                                                          backend: %s } }''' % (transform, source,
                                                                                backend)
    return cct.Net(parse_text(text, caffe_pb2.NetParameter()), caffe_pb2.TEST)


@pytest.mark.parametrize('backend', ['lmdb', 'leveldb'])
def test_encoded_and_raw_give_identical_pixels_through_the_data_layer(images, backend):
    tmp_path, names, pictures = images
    assert convert(tmp_path, 'raw', '--backend=' + backend) == 0
    assert convert(tmp_path, 'enc', '--encoded', '--backend=' + backend) == 0
    transform = 'crop_size: 8 mean_value: 100 mean_value: 110 mean_value: 120 scale: 0.5'
    raw = data_net(tmp_path / 'raw', backend.upper(), transform)
    enc = data_net(tmp_path / 'enc', backend.upper(), transform)
    raw.forward()
    enc.forward()
    np.testing.assert_array_equal(raw.blobs['data'].data, enc.blobs['data'].data)
    np.testing.assert_array_equal(raw.blobs['label'].data, np.arange(5))
    expected = (pictures['c.PNG'][2:10, 1:9].transpose(2, 0, 1).astype(np.float32) -
                np.array([100, 110, 120], np.float32)[:, None, None]) * np.float32(0.5)
    np.testing.assert_array_equal(raw.blobs['data'].data[2], expected)


def test_compute_image_mean(images, log_text):
    tmp_path, names, pictures = images
    assert convert(tmp_path, 'raw') == 0
    assert convert(tmp_path, 'enc', '--encoded') == 0
    assert cli.main(['compute_image_mean', str(tmp_path / 'raw'),
                     str(tmp_path / 'mean.binaryproto')]) == 0
    proto = caffe_pb2.BlobProto.FromString((tmp_path / 'mean.binaryproto').read_bytes())
    assert (proto.num, proto.channels, proto.height, proto.width) == (1, 3, 12, 10)
    assert not proto.HasField('shape')
    total = np.zeros((3, 12, 10), np.float32)
    for name in names:
        total += pictures[name].transpose(2, 0, 1).astype(np.float32)
    mean = total / np.float32(5)
    np.testing.assert_array_equal(np.array(proto.data, np.float32).reshape(3, 12, 10), mean)
    np.testing.assert_array_equal(compute_mean(str(tmp_path / 'enc')), mean)
    text = log_text.getvalue()
    for channel in range(3):
        logged = float(text.split('mean_value channel [%d]: ' % channel)[1].split()[0])
        assert logged == pytest.approx(mean[channel].mean(dtype=np.float64), rel=1e-5)
    assert 'Write to %s' % (tmp_path / 'mean.binaryproto') in text
    # The mean file feeds the transformer of a Data layer.
    net = data_net(tmp_path / 'raw', 'LMDB', 'mean_file: "%s"' % (tmp_path / 'mean.binaryproto'))
    net.forward()
    np.testing.assert_allclose(net.blobs['data'].data.mean(axis=0), 0, atol=1e-4)


def test_compute_image_mean_of_a_leveldb_and_errors(images, capsys):
    tmp_path, names, pictures = images
    assert convert(tmp_path, 'level', '--backend=leveldb') == 0
    assert cli.main(['compute_image_mean', '--backend=leveldb', str(tmp_path / 'level'),
                     str(tmp_path / 'mean.binaryproto')]) == 0
    proto = caffe_pb2.BlobProto.FromString((tmp_path / 'mean.binaryproto').read_bytes())
    total = sum(pictures[name].transpose(2, 0, 1).astype(np.float32) for name in names)
    np.testing.assert_array_equal(np.array(proto.data, np.float32).reshape(3, 12, 10),
                                  total / np.float32(5))
    capsys.readouterr()
    # The default backend is lmdb, as in Caffe: a LevelDB given without --backend is named.
    assert cli.main(['compute_image_mean', str(tmp_path / 'level')]) == 1
    assert 'it looks like a LevelDB database' in capsys.readouterr().err
    assert cli.main(['compute_image_mean', str(tmp_path / 'nowhere')]) == 1
    assert 'LMDB database not found: %s' % (tmp_path / 'nowhere') in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_only(images, monkeypatch, capsys):
    tmp_path, names, _ = images
    terminal = _Terminal()
    monkeypatch.setattr(sys, 'stderr', terminal)
    assert convert(tmp_path, 'db') == 0
    assert 'convert_imageset:' in terminal.getvalue()
    assert '/5 [' in terminal.getvalue()
    monkeypatch.undo()
    capsys.readouterr()
    assert convert(tmp_path, 'db2') == 0
    assert 'convert_imageset:' not in capsys.readouterr().err
