"""Binary .caffemodel files (cct/net.py copy_from/save, cct/io): Caffe's LeNet file rewritten byte
for byte, the old V1 (``layers``, enum types, legacy 4-D blob dims) and V0 layouts, a file over
500 MB, weight copying by layer name, and the errors for truncated files and mismatched weights."""
import os

import numpy as np
import pytest

from cct.errors import ParseError, WeightsError
from cct.io import parse_text, read_net_binary, write_binary
from cct.io.blobproto import array_to_blobproto_bytes, blobproto_to_array
from cct.net import Net
from cct.proto import caffe_pb2
from cct.testing import captured_log, to_v1_layout

@pytest.fixture(scope='module')
def lenet(shared):
    return (os.path.join(shared, 'nets', 'lenet.prototxt'),
            os.path.join(shared, 'models', 'lenet_iter_10000.caffemodel'))


def params_of(net):
    return {name: [blob.data.copy() for blob in blobs] for name, blobs in net.params.items()}


def assert_same_params(a, b):
    assert list(a) == list(b)
    for name in a:
        assert len(a[name]) == len(b[name])
        for x, y in zip(a[name], b[name]):
            assert x.shape == y.shape and x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)


def test_real_caffemodel_is_v2_with_shapes(lenet):
    model = read_net_binary(lenet[1])
    assert [layer.name for layer in model.layer] == [
        'mnist', 'conv1', 'pool1', 'conv2', 'pool2', 'ip1', 'relu1', 'ip2', 'loss']
    shapes = {layer.name: [tuple(b.shape.dim) for b in layer.blobs] for layer in model.layer
              if len(layer.blobs)}
    assert shapes == {'conv1': [(20, 1, 5, 5), (20,)], 'conv2': [(50, 20, 5, 5), (50,)],
                      'ip1': [(500, 800), (500,)], 'ip2': [(10, 500), (10,)]}


def test_saving_caffes_lenet_rewrites_its_file_byte_for_byte(shared, lenet, tmp_path,
                                                             monkeypatch):
    """Caffe wrote lenet_iter_10000.caffemodel from the TRAIN net of lenet_train_test.prototxt;
    that net built here, given those weights and saved, is the same file to the byte: the name,
    every layer's parameters as Net::ToProto writes them (phase filled in, SoftmaxWithLoss's
    implicit loss_weight, the Data layer's params), blobs with ``shape`` and packed floats. The
    Data layer's relative source (examples/mnist/mnist_train_lmdb) points at the MNIST LMDB that
    real Caffe wrote."""
    os.makedirs(tmp_path / 'examples' / 'mnist')
    os.symlink(os.path.join(shared, 'data', 'mnist_test_lmdb_by_caffe'),
               tmp_path / 'examples' / 'mnist' / 'mnist_train_lmdb')
    monkeypatch.chdir(tmp_path)
    net = Net(os.path.join(shared, 'nets', 'lenet_train_test.prototxt'), caffe_pb2.TRAIN)
    net.copy_from(lenet[1])
    net.save(str(tmp_path / 'rewritten.caffemodel'))
    with open(lenet[1], 'rb') as f:
        caffes = f.read()
    assert (tmp_path / 'rewritten.caffemodel').read_bytes() == caffes
    assert net.to_proto().SerializeToString() == caffes


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_save_then_load_gives_identical_parameters(tmp_path, lenet, dtype):
    net = Net(lenet[0], caffe_pb2.TEST, weights=lenet[1], dtype=dtype)
    path = str(tmp_path / 'saved.caffemodel')
    net.save(path)
    again = Net(lenet[0], caffe_pb2.TEST, dtype=dtype)
    again.copy_from(path)
    assert_same_params(params_of(net), params_of(again))
    saved = read_net_binary(path)
    blob = saved.layer[1].blobs[0]
    assert tuple(blob.shape.dim) == (20, 1, 5, 5) and not blob.HasField('num')
    # A float64 net writes double_data, as Caffe's Blob<double>::ToProto does.
    assert (len(blob.double_data) > 0) == (dtype == np.float64)


def test_v1_layout_caffemodel_loads_identically(tmp_path, lenet):
    old = to_v1_layout(read_net_binary(lenet[1]))
    assert tuple(proto_dims(old.layers[5].blobs[0])) == (1, 1, 500, 800)   # ip1 weights
    assert tuple(proto_dims(old.layers[1].blobs[1])) == (1, 1, 1, 20)      # conv1 bias
    path = str(tmp_path / 'v1.caffemodel')
    write_binary(old, path)
    upgraded = read_net_binary(path)
    assert not len(upgraded.layers)
    assert [layer.type for layer in upgraded.layer][:3] == ['Data', 'Convolution', 'Pooling']
    current = Net(lenet[0], caffe_pb2.TEST, weights=lenet[1])
    legacy = Net(lenet[0], caffe_pb2.TEST, weights=path)
    assert_same_params(params_of(current), params_of(legacy))


def proto_dims(blob):
    return blob.num, blob.channels, blob.height, blob.width


def test_v0_layout_caffemodel_loads_identically(tmp_path, lenet):
    """V0 files nest each layer (with its blobs) in ``layers { layer { ... } }``."""
    v0_types = {'Data': 'data', 'Convolution': 'conv', 'Pooling': 'pool', 'InnerProduct':
                'innerproduct', 'ReLU': 'relu', 'SoftmaxWithLoss': 'softmax_loss'}
    model = read_net_binary(lenet[1])
    old = caffe_pb2.NetParameter(name=model.name)
    for layer in model.layer:
        connection = old.layers.add()
        connection.bottom.extend(layer.bottom)
        connection.top.extend(layer.top)
        connection.layer.name = layer.name
        connection.layer.type = v0_types[layer.type]
        for blob in layer.blobs:
            connection.layer.blobs.add().MergeFromString(
                array_to_blobproto_bytes(blobproto_to_array(blob), legacy=True))
    path = str(tmp_path / 'v0.caffemodel')
    write_binary(old, path)
    current = Net(lenet[0], caffe_pb2.TEST, weights=lenet[1])
    legacy = Net(lenet[0], caffe_pb2.TEST, weights=path)
    assert_same_params(params_of(current), params_of(legacy))


def _varint(value):
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out) + bytes([value])


def _field(number, payload):
    """A length-delimited protobuf field, encoded by hand: the big file is never built in memory."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_a_caffemodel_over_500mb_loads(tmp_path):
    """Caffe reads binary protos up to 2 GB (its coded-stream limit raised past protobuf's old
    64 MB default); a 512 MiB InnerProduct weight, streamed to disk by hand, loads exactly."""
    inputs, outputs = 16384, 8192
    pattern = np.arange(1 << 16, dtype=np.float32) * np.float32(0.5) - 7
    repeats = inputs * outputs // pattern.size
    shape = _field(1, b''.join(_varint(d) for d in (outputs, inputs)))   # BlobShape.dim, packed
    data_bytes = pattern.size * 4 * repeats
    blob_head = _varint(5 << 3 | 2) + _varint(data_bytes)                 # BlobProto.data, packed
    blob_size = len(blob_head) + data_bytes + len(_field(7, shape))
    layer_head = _field(1, b'ip') + _field(2, b'InnerProduct') + _varint(7 << 3 | 2) + \
        _varint(blob_size)
    path = tmp_path / 'big.caffemodel'
    with open(path, 'wb') as f:
        f.write(_field(1, b'big'))
        f.write(_varint(100 << 3 | 2) + _varint(len(layer_head) + blob_size))   # NetParameter.layer
        f.write(layer_head + blob_head)
        chunk = pattern.astype('<f4').tobytes()
        for _ in range(repeats):
            f.write(chunk)
        f.write(_field(7, shape))
    assert os.path.getsize(path) > 500 * 10 ** 6
    net = Net(parse_text(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: %d } } } '
        'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
        'inner_product_param { num_output: %d bias_term: false } }' % (inputs, outputs),
        caffe_pb2.NetParameter()))
    net.copy_from(str(path))
    weights = net.params['ip'][0].data
    assert weights.shape == (outputs, inputs)
    assert (weights.reshape(-1, pattern.size) == pattern).all()


def test_copy_from_matches_layers_by_name(tmp_path, lenet):
    """File layers the net lacks are logged as ignored; net layers the file lacks keep their
    values; several comma-separated files load in order."""
    net = Net(lenet[0], caffe_pb2.TEST)
    net.params['ip2'][0].data[...] = 7
    filled_conv2 = net.params['conv2'][0].data.copy()
    partial = read_net_binary(lenet[1])
    keep = [layer for layer in partial.layer if layer.name in ('conv1', 'ip1', 'loss')]
    del partial.layer[:]
    partial.layer.extend(keep)
    extra = partial.layer.add(name='not_in_the_net', type='InnerProduct')
    extra.blobs.add().MergeFromString(array_to_blobproto_bytes(np.zeros((1, 1), np.float32)))
    path = str(tmp_path / 'partial.caffemodel')
    write_binary(partial, path)
    with captured_log() as log:
        net.copy_from(path)
    assert 'Ignoring source layer loss' in log
    assert 'Ignoring source layer not_in_the_net' in log
    reference = Net(lenet[0], caffe_pb2.TEST, weights=lenet[1])
    np.testing.assert_array_equal(net.params['conv1'][0].data, reference.params['conv1'][0].data)
    assert (net.params['ip2'][0].data == 7).all()
    np.testing.assert_array_equal(net.params['conv2'][0].data, filled_conv2)
    net.copy_from(path + ',' + lenet[1])
    assert_same_params(params_of(net), params_of(reference))


def lenet_variant(lenet, old, new):
    with open(lenet[0]) as f:
        text = f.read()
    assert old in text
    return parse_text(text.replace(old, new, 1), caffe_pb2.NetParameter(), 'variant')


def test_weight_shape_mismatch_names_layer_blob_and_shapes(lenet):
    net = Net(lenet_variant(lenet, 'num_output: 20', 'num_output: 10'))
    with pytest.raises(WeightsError) as error:
        net.copy_from(lenet[1])
    assert str(error.value) == (
        "%s: cannot copy param 0 weights from layer 'conv1'; shape mismatch. Source param shape "
        'is 20 1 5 5 (500); target param shape is 10 1 5 5 (250). To learn this layer\'s '
        'parameters from scratch rather than copying from a saved net, rename the layer.'
        % lenet[1])


def test_weight_blob_count_mismatch(tmp_path, lenet):
    model = read_net_binary(lenet[1])
    del model.layer[5].blobs[1]   # ip1 without its bias
    path = str(tmp_path / 'nobias.caffemodel')
    write_binary(model, path)
    net = Net(lenet[0], caffe_pb2.TEST)
    with pytest.raises(WeightsError, match="incompatible number of blobs for layer 'ip1': the net "
                                           'has 2, the file has 1'):
        net.copy_from(path)


def test_truncated_caffemodel_is_a_parse_error(tmp_path, lenet):
    with open(lenet[1], 'rb') as f:
        data = f.read()
    path = tmp_path / 'truncated.caffemodel'
    path.write_bytes(data[:len(data) // 2])
    net = Net(lenet[0], caffe_pb2.TEST)
    with pytest.raises(ParseError, match=r'truncated.caffemodel: not a valid binary NetParameter '
                                         r'\(truncated or corrupt file\?\)'):
        net.copy_from(str(path))
    with pytest.raises(ParseError, match='caffemodel file not found: .*absent.caffemodel'):
        net.copy_from(str(tmp_path / 'absent.caffemodel'))
