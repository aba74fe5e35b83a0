"""NetSpec, layers (L), params (P), to_proto (cct/net_spec.py): the text pycaffe writes, naming rules
and keyword routing, and nets built from the result (pycaffe's test_net_spec.py cases)."""
import numpy as np
import pytest
from google.protobuf import text_format

import cct as caffe
from cct import layers as L
from cct import params as P
from cct.proto import caffe_pb2

# examples/mnist/lenet_auto_train.prototxt, written by pycaffe's net_spec in Caffe's LeNet notebook.
PYCAFFE_LENET_AUTO_TRAIN = """
layer { name: "data" type: "Data" top: "data" top: "label"
  transform_param { scale: 0.00392156862745 }
  data_param { source: "examples/mnist/mnist_train_lmdb" batch_size: 64 backend: LMDB } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  convolution_param { num_output: 50 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
  inner_product_param { num_output: 500 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


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
    expected = text_format.Parse(PYCAFFE_LENET_AUTO_TRAIN, caffe_pb2.NetParameter())
    assert notebook_lenet('examples/mnist/mnist_train_lmdb', 64) == expected
    text = str(notebook_lenet('examples/mnist/mnist_train_lmdb', 64))
    assert text.startswith('layer {\n  name: "data"\n  type: "Data"\n  top: "data"\n')


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
