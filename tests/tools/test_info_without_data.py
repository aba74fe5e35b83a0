"""``cct info`` on nets whose data is absent (cct/tools/info_data.py): the shapes data layers
declare (batch_size, crop_size, mean_value, new_height/new_width, a mean_file's), ``?`` for the rest
and the layers that need it, and one line per data layer saying what only the data could tell."""
import os

import numpy as np

from cct import cli
from cct.data.datum import image_to_datum
from cct.data.db import Writer
from cct.io import write_binary
from cct.proto import caffe_pb2

TRAIN_VAL = '''name: "small"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
        transform_param { crop_size: 8 mirror: true %(transform)s }
        data_param { source: "%(train)s" batch_size: 16 backend: LMDB } }
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TEST }
        transform_param { crop_size: 8 %(transform)s }
        data_param { source: "%(test)s" batch_size: 10 backend: LMDB } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 5 } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy"
        include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
'''


def info(capsys, *argv):
    status = cli.main(['info'] + [str(a) for a in argv])
    captured = capsys.readouterr()
    assert captured.err == ''
    return status, captured.out


def rows(out):
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith('#  Layer')) + 2
    end = next(i for i in range(start, len(lines)) if lines[i].startswith('-'))
    table = lines[start:end]
    return {line.split()[1]: line.split()[2:] for line in table}


def write_net(tmp_path, transform, train='absent_train_lmdb', test='absent_test_lmdb'):
    path = tmp_path / 'train_val.prototxt'
    path.write_text(TRAIN_VAL % {'transform': transform, 'train': tmp_path / train,
                                 'test': tmp_path / test})
    return path


def test_crop_and_mean_values_declare_every_shape(tmp_path, capsys):
    net = write_net(tmp_path, 'mean_value: 104 mean_value: 117 mean_value: 123')
    status, out = info(capsys, net)
    assert status == 0 and 'not inferred' not in out and '?' not in out
    table = rows(out)
    assert table['data'] == ['Data', '10x3x8x8,', '10', '0', '-']
    assert table['conv'][:3] == ['Convolution', '10x4x6x6', '112']
    assert table['ip'][:3] == ['InnerProduct', '10x5', '{:,}'.format(4 * 6 * 6 * 5 + 5)]
    # conv 2 * 10 * 4 * 36 * 27 + 10 * 4 * 36 (bias), relu 1440, ip 2 * 10 * 144 * 5 + 50,
    # accuracy 50, loss 250: 95,390
    assert 'Forward:    95.4 kFLOP per pass of batch 10' in out
    _, out = info(capsys, net, '--phase', 'TRAIN')
    assert rows(out)['data'][:3] == ['Data', '16x3x8x8,', '16']


def test_unknown_channels_leave_the_dependent_layers_unknown(tmp_path, capsys):
    net = write_net(tmp_path, 'scale: 0.00390625')
    status, out = info(capsys, net)
    assert status == 0
    assert out.splitlines()[0] == 'small (TEST phase, 8 layers)'   # with the Split of label
    table = rows(out)
    assert list(table) == ['data', 'conv', 'relu', 'ip', 'accuracy', 'loss']
    assert table['data'] == ['Data', '10x?x8x8,', '10', '0', '-']
    assert all(table[name][1:] == ['?', '?', '?'] for name in ('conv', 'relu', 'ip', 'loss'))
    assert 'Parameters: 0 ' in out
    lines = out.splitlines()
    assert lines[-2:] == [
        'Shapes not inferred without the data (the totals leave out the 5 layers marked ?):',
        "  'data' (Data): the channels come from the records of %s (absent: %s)"
        % ((tmp_path / 'absent_test_lmdb',) * 2)]


def test_mean_file_gives_channels_and_size(tmp_path, capsys):
    mean = caffe_pb2.BlobProto()
    mean.shape.dim.extend([1, 1, 12, 10])
    mean.data.extend(np.zeros(120, np.float32))
    write_binary(mean, str(tmp_path / 'mean.binaryproto'))
    net = write_net(tmp_path, 'mean_file: "%s"' % (tmp_path / 'mean.binaryproto'))
    assert rows(info(capsys, net)[1])['data'][:3] == ['Data', '10x1x8x8,', '10']
    uncropped = tmp_path / 'uncropped.prototxt'
    uncropped.write_text(net.read_text().replace('crop_size: 8', ''))
    assert rows(info(capsys, uncropped)[1])['conv'][:3] == ['Convolution', '10x4x10x8', '40']
    missing = tmp_path / 'missing_mean.prototxt'
    missing.write_text(net.read_text().replace('mean.binaryproto', 'nothing.binaryproto'))
    _, out = info(capsys, missing)
    assert rows(out)['data'][1] == '10x?x8x8,'
    assert out.splitlines()[-1].endswith('(absent: %s, %s)' % (
        tmp_path / 'nothing.binaryproto', tmp_path / 'absent_test_lmdb'))


def test_image_data_declares_its_colour_and_size(tmp_path, capsys):
    net = tmp_path / 'images.prototxt'
    net.write_text('''name: "images"
        layer { name: "data" type: "ImageData" top: "data" top: "label"
                image_data_param { source: "%s" batch_size: 4 new_height: 20 new_width: 30
                                   is_color: false } }
        layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
                pooling_param { pool: MAX kernel_size: 2 stride: 2 } }''' % (tmp_path / 'list.txt'))
    status, out = info(capsys, net)
    assert status == 0 and rows(out)['pool'][:2] == ['Pooling', '4x1x10x15']
    # The list exists but its first image does not: still described without reading images.
    (tmp_path / 'list.txt').write_text('missing.png 0\n')
    status, out = info(capsys, net)
    assert status == 0 and rows(out)['data'][:2] == ['ImageData', '4x1x20x30,']


def test_hdf5_shapes_are_the_files(tmp_path, capsys):
    net = tmp_path / 'hdf5.prototxt'
    net.write_text('''name: "h"
        layer { name: "data" type: "HDF5Data" top: "data" top: "label"
                hdf5_data_param { source: "%s" batch_size: 4 } }
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
                inner_product_param { num_output: 2 } }''' % (tmp_path / 'files.txt'))
    status, out = info(capsys, net)
    assert status == 0
    assert rows(out) == {'data': ['HDF5Data', '?,', '?', '0', '-'],
                         'ip': ['InnerProduct', '?', '?', '?']}
    assert out.splitlines()[-1] == (
        "  'data' (HDF5Data): the top shapes are those of the datasets in the files listed in %s "
        "(absent: %s)" % ((tmp_path / 'files.txt',) * 2))


def test_present_data_is_read_as_before(tmp_path, capsys):
    """With its database there, the Data layer is built and its records give the shape."""
    with Writer(tmp_path / 'test_lmdb', 'lmdb') as db:
        for i in range(3):
            db.put('%08d' % i, image_to_datum(np.full((9, 11), i, np.uint8), i).SerializeToString())
    net = write_net(tmp_path, 'scale: 0.00390625', test='test_lmdb')
    status, out = info(capsys, net)
    assert status == 0 and '?' not in out
    assert rows(out)['data'][:3] == ['Data', '10x1x8x8,', '10']
    assert rows(out)['ip'][:3] == ['InnerProduct', '10x5', '{:,}'.format(4 * 6 * 6 * 5 + 5)]


def test_bad_declarations_are_still_errors(tmp_path, capsys):
    net = write_net(tmp_path, 'scale: 1').read_text().replace('batch_size: 10', 'batch_size: 0')
    path = tmp_path / 'zero.prototxt'
    path.write_text(net)
    assert cli.main(['info', str(path)]) == 1
    assert capsys.readouterr().err == ("cct info: error: Layer 'data' (type Data): Positive batch "
                                       'size required (batch_size: 0)\n')
    assert not os.path.exists(tmp_path / 'absent_test_lmdb')   # nothing was created
