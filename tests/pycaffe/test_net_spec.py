"""NetSpec, layers (L), params (P), to_proto (cct/net_spec.py): the text pycaffe writes, naming rules
and keyword routing, and nets built from the result (pycaffe's test_net_spec.py cases)."""
import numpy as np
import pytest
from google.protobuf import text_format

import cct as caffe
from cct import layers as L
from cct import params as P
from cct.proto import caffe_pb2

# examples/mnist/lenet_auto_train.prototxt byte for byte, as pycaffe's net_spec wrote it in Caffe's
# LeNet notebook.
PYCAFFE_LENET_AUTO_TRAIN = (
    'layer {\n  name: "data"\n  type: "Data"\n  top: "data"\n  top: "label"\n'
    '  transform_param {\n    scale: 0.00392156862745\n  }\n'
    '  data_param {\n    source: "examples/mnist/mnist_train_lmdb"\n    batch_size: 64\n'
    '    backend: LMDB\n  }\n}\n'
    'layer {\n  name: "conv1"\n  type: "Convolution"\n  bottom: "data"\n  top: "conv1"\n'
    '  convolution_param {\n    num_output: 20\n    kernel_size: 5\n'
    '    weight_filler {\n      type: "xavier"\n    }\n  }\n}\n'
    'layer {\n  name: "pool1"\n  type: "Pooling"\n  bottom: "conv1"\n  top: "pool1"\n'
    '  pooling_param {\n    pool: MAX\n    kernel_size: 2\n    stride: 2\n  }\n}\n'
    'layer {\n  name: "conv2"\n  type: "Convolution"\n  bottom: "pool1"\n  top: "conv2"\n'
    '  convolution_param {\n    num_output: 50\n    kernel_size: 5\n'
    '    weight_filler {\n      type: "xavier"\n    }\n  }\n}\n'
    'layer {\n  name: "pool2"\n  type: "Pooling"\n  bottom: "conv2"\n  top: "pool2"\n'
    '  pooling_param {\n    pool: MAX\n    kernel_size: 2\n    stride: 2\n  }\n}\n'
    'layer {\n  name: "ip1"\n  type: "InnerProduct"\n  bottom: "pool2"\n  top: "ip1"\n'
    '  inner_product_param {\n    num_output: 500\n'
    '    weight_filler {\n      type: "xavier"\n    }\n  }\n}\n'
    'layer {\n  name: "relu1"\n  type: "ReLU"\n  bottom: "ip1"\n  top: "ip1"\n}\n'
    'layer {\n  name: "ip2"\n  type: "InnerProduct"\n  bottom: "ip1"\n  top: "ip2"\n'
    '  inner_product_param {\n    num_output: 10\n'
    '    weight_filler {\n      type: "xavier"\n    }\n  }\n}\n'
    'layer {\n  name: "loss"\n  type: "SoftmaxWithLoss"\n  bottom: "ip2"\n  bottom: "label"\n'
    '  top: "loss"\n}\n')


def notebook_lenet(lmdb, batch_size):
    """The lenet() function of Caffe's 01-learning-lenet notebook, verbatim in spirit."""
    n = caffe.NetSpec()
    n.data, n.label = L.Data(batch_size=batch_size, backend=P.Data.LMDB, source=lmdb,
                             transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type='xavier'))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50, weight_filler=dict(type='xavier'))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.ip1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type='xavier'))
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type='xavier'))
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    return n.to_proto()


def input_lenet(batch_size, named=True):
    """pycaffe's test_net_spec lenet/anon_lenet with Input layers instead of DummyData."""
    data, label = L.Input(shape=[dict(dim=[batch_size, 1, 28, 28]), dict(dim=[batch_size])],
                          ntop=2)
    conv1 = L.Convolution(data, kernel_size=5, num_output=20, weight_filler=dict(type='xavier'))
    pool1 = L.Pooling(conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    ip1 = L.InnerProduct(pool1, num_output=50, weight_filler=dict(type='xavier'))
    relu1 = L.ReLU(ip1, in_place=True)
    ip2 = L.InnerProduct(relu1, num_output=10, weight_filler=dict(type='xavier'))
    loss = L.SoftmaxWithLoss(ip2, label)
    if not named:
        return loss.to_proto()
    n = caffe.NetSpec()
    n.data, n.label, n.conv1, n.pool1, n.ip1, n.relu1, n.ip2, n.loss = \
        data, label, conv1, pool1, ip1, relu1, ip2, loss
    return n.to_proto()


def test_notebook_lenet_is_what_pycaffe_wrote():
    proto = notebook_lenet('examples/mnist/mnist_train_lmdb', 64)
    assert proto == text_format.Parse(PYCAFFE_LENET_AUTO_TRAIN, caffe_pb2.NetParameter())
    # The same text line for line (field order, names, in-place tops), but for the one float:
    # pycaffe's Python 2 protobuf printed 1/255 with 12 digits, today's prints the shortest text
    # that reads back as the same float32.
    assert np.float32(0.00392156886) == np.float32(0.00392156862745)
    assert str(proto) == PYCAFFE_LENET_AUTO_TRAIN.replace('0.00392156862745', '0.00392156886')


def test_named_and_anonymous_lenet_build_nets(tmp_path):
    for named in (True, False):
        proto = input_lenet(5, named)
        assert proto.layer[4].bottom == proto.layer[4].top  # the in-place ReLU
        path = tmp_path / 'net.prototxt'
        path.write_text(str(proto))
        net = caffe.Net(str(path), caffe.TEST)
        assert len(net.layers) == 7
        data, label = net.inputs
        assert (data, label) == (('data', 'label') if named else ('Input1', 'Input2'))
        out = net.forward(**{data: np.zeros((5, 1, 28, 28)), label: np.zeros(5)})
        # Zero inputs and zero biases: uniform scores, loss log(10).
        assert out['loss' if named else 'SoftmaxWithLoss1'] == pytest.approx(np.log(10), rel=1e-5)


def test_anonymous_names_count_per_type():
    proto = input_lenet(5, named=False)
    assert [layer.name for layer in proto.layer] == [
        'Input1', 'Convolution1', 'Pooling1', 'InnerProduct1', 'ReLU1', 'InnerProduct2',
        'SoftmaxWithLoss1']
    assert list(proto.layer[0].top) == ['Input1', 'Input2']
    assert list(proto.layer[4].top) == ['InnerProduct1']


def test_only_needed_layers_in_dependency_order():
    n = caffe.NetSpec()
    data = L.Input(shape=dict(dim=[1, 2]))
    n.b = L.ReLU(L.TanH(data))
    n.a = data
    proto = n.to_proto()
    assert [layer.type for layer in proto.layer] == ['Input', 'TanH', 'ReLU']
    assert [layer.name for layer in proto.layer] == ['a', 'TanH1', 'b']
    assert list(proto.layer[1].bottom) == ['a']


def test_keyword_routing_repeated_fields_and_messages():
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3, 8, 8]))
    n.conv = L.Convolution(n.data, kernel_size=3, pad=[1], num_output=4,
                           param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)],
                           bias_filler=dict(type='constant', value=0.2), loss_weight=0.5,
                           include=dict(phase=caffe.TRAIN))
    n.deconv = L.Deconvolution(n.conv, convolution_param=dict(num_output=2, kernel_size=2))
    layer = n.to_proto().layer[1]
    assert list(layer.convolution_param.kernel_size) == [3]
    assert list(layer.convolution_param.pad) == [1]
    assert layer.convolution_param.bias_filler.value == pytest.approx(0.2)
    assert [(p.lr_mult, p.decay_mult) for p in layer.param] == [(1, 1), (2, 0)]
    assert list(layer.loss_weight) == [0.5]
    assert layer.include[0].phase == caffe.TRAIN
    assert n.to_proto().layer[2].convolution_param.num_output == 2
    with pytest.raises(AttributeError):
        n.bad = L.Deconvolution(n.conv, num_output=2)
        n.to_proto()


def test_zero_and_many_tops_and_netspec_access(tmp_path):
    n = caffe.NetSpec()
    n.data, n.data2 = L.Input(shape=[dict(dim=[3]), dict(dim=[4, 2])], ntop=2)
    n.silence = L.Silence(n.data, n.data2, ntop=0)
    proto = n.to_proto()
    assert proto.layer[1].name == 'silence' and not len(proto.layer[1].top)
    path = tmp_path / 'silent.prototxt'
    path.write_text(str(proto))
    assert caffe.Net(str(path), caffe.TEST).forward() == {}  # pycaffe's test_zero_tops
    assert n['data'] is n.data and n.keys() == ['data', 'data2', 'silence']
    assert len(n.vals()) == 3
    n.update('data', dict(shape=[dict(dim=[5]), dict(dim=[4, 2])]))
    assert list(n.to_proto().layer[0].input_param.shape[0].dim) == [5]
    with pytest.raises(AttributeError):
        n.missing


def test_params_constants_and_top_to_proto():
    assert P.Pooling.MAX == caffe_pb2.PoolingParameter.MAX
    assert P.Pooling.AVE == 1
    assert P.Eltwise.SUM == caffe_pb2.EltwiseParameter.SUM
    top = L.ReLU(L.Input(shape=dict(dim=[1])))
    assert [layer.name for layer in top.to_proto().layer] == ['Input1', 'ReLU1']
    assert [layer.name for layer in caffe.to_proto(top).layer] == ['Input1', 'ReLU1']


def pycaffe_lenet(batch_size, named):
    """pycaffe's test_net_spec lenet() and anon_lenet(): DummyData with a transform_param."""
    data, label = L.DummyData(shape=[dict(dim=[batch_size, 1, 28, 28]),
                                     dict(dim=[batch_size, 1, 1, 1])],
                              transform_param=dict(scale=1. / 255), ntop=2)
    conv1 = L.Convolution(data, kernel_size=5, num_output=20, weight_filler=dict(type='xavier'))
    pool1 = L.Pooling(conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    conv2 = L.Convolution(pool1, kernel_size=5, num_output=50, weight_filler=dict(type='xavier'))
    pool2 = L.Pooling(conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    ip1 = L.InnerProduct(pool2, num_output=500, weight_filler=dict(type='xavier'))
    relu1 = L.ReLU(ip1, in_place=True)
    ip2 = L.InnerProduct(relu1, num_output=10, weight_filler=dict(type='xavier'))
    loss = L.SoftmaxWithLoss(ip2, label)
    if not named:
        return loss.to_proto()
    n = caffe.NetSpec()
    n.data, n.label, n.conv1, n.pool1, n.conv2, n.pool2, n.ip1, n.relu1, n.ip2, n.loss = \
        data, label, conv1, pool1, conv2, pool2, ip1, relu1, ip2, loss
    return n.to_proto()


def load(tmp_path, proto, phase=caffe.TEST):
    path = tmp_path / 'net.prototxt'
    path.write_text(str(proto))
    return caffe.Net(str(path), phase)


def test_pycaffe_test_lenet(tmp_path):
    for named in (True, False):
        proto = pycaffe_lenet(50, named)
        assert proto.layer[6].bottom == proto.layer[6].top
        assert proto.layer[0].transform_param.scale == pytest.approx(1 / 255)
        net = load(tmp_path, proto)
        assert len(net.layers) == 9  # BVLC's count (Intel's fork fuses the ReLU and says 8)
        assert net.blobs['label' if named else 'DummyData2'].shape == (50, 1, 1, 1)


def test_pycaffe_test_zero_tops(tmp_path):
    n = caffe.NetSpec()
    # A scalar for the repeated `dim`, inside a dict for the repeated `shape`: one-element lists.
    n.data, n.data2 = L.DummyData(shape=dict(dim=3), ntop=2)
    n.silence_data = L.Silence(n.data, ntop=0)
    n.silence_data2 = L.Silence(n.data2, ntop=0)
    proto = n.to_proto()
    assert list(proto.layer[0].dummy_data_param.shape[0].dim) == [3]
    assert [layer.name for layer in proto.layer] == ['data', 'silence_data', 'silence_data2']
    assert len(load(tmp_path, proto).forward()) == 0


def test_pycaffe_test_type_error():
    data = L.DummyData(ntop=2)  # a tuple of two Tops
    with pytest.raises(TypeError, match=r"^Silence input 0 is not a Top \(type is <class 'tuple'>\)$"):
        L.Silence(data, ntop=0)
    L.Silence(*data, ntop=0)


def test_named_param_specs_share_weights(tmp_path):
    """A ``param`` list with names: two layers share one weight blob, as in Caffe's siamese net."""
    n = caffe.NetSpec()
    n.a, n.b = L.Input(shape=[dict(dim=[2, 3]), dict(dim=[2, 3])], ntop=2)
    shared = [dict(name='w', lr_mult=1), dict(name='bias', lr_mult=2)]
    n.fa = L.InnerProduct(n.a, num_output=4, param=shared, weight_filler=dict(type='gaussian'))
    n.fb = L.InnerProduct(n.b, num_output=4, param=shared, weight_filler=dict(type='gaussian'))
    proto = n.to_proto()
    assert [(p.name, p.lr_mult) for p in proto.layer[2].param] == [('w', 1), ('bias', 2)]
    net = load(tmp_path, proto)
    assert net.params['fb'][0].shares_data_with(net.params['fa'][0])
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = net.forward(a=x, b=x)
    np.testing.assert_array_equal(out['fa'], out['fb'])


def test_a_top_named_twice_takes_the_last_name():
    n = caffe.NetSpec()
    n.first = L.Input(shape=dict(dim=[1]))
    n.second = n.first
    proto = n.to_proto()
    assert [(layer.name, list(layer.top)) for layer in proto.layer] == [('second', ['second'])]


def test_python_layer_keywords_go_to_python_param():
    n = caffe.NetSpec()
    n.data, n.label = L.Python(module='my_layers', layer='DataLayer', param_str="{'batch': 4}",
                               ntop=2, include=dict(phase=caffe.TRAIN))
    layer = n.to_proto().layer[0]
    assert (layer.type, layer.python_param.module, layer.python_param.layer,
            layer.python_param.param_str) == ('Python', 'my_layers', 'DataLayer', "{'batch': 4}")
    assert list(layer.top) == ['data', 'label'] and layer.include[0].phase == caffe.TRAIN
