"""Net.share_diffs on an accelerator (opencl:0 on PoCL in CI, cuda:0 where a GPU is): the shared
diff buffers are device memory (SyncedMemory), and a training pass gives the param gradients a diff
buffer per blob gives, bit for bit, on the same device."""
import numpy as np
import pytest

from cct.io import parse_text
from cct.net import Net
from cct.proto import caffe_pb2

# The net of tests/test_net_diff_sharing.py without its Flatten (a view layer), to keep it short.
NET = '''
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 3 dim: 6 dim: 6 } shape { dim: 4 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1"
        scale_param { bias_term: true filler { type: "uniform" min: 0.5 max: 1.5 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 group: 4
                            weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "sum" type: "Eltwise" bottom: "conv1" bottom: "conv2" top: "sum" }
layer { name: "pool" type: "Pooling" bottom: "sum" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool" top: "ip1"
        inner_product_param { num_output: 6 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "relu2" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
'''


def gradients(device, share, monkeypatch):
    if not share:
        monkeypatch.setattr('cct.net.diff_sharing_groups', lambda *args, **kwargs: [])
    net = Net(parse_text(NET, caffe_pb2.NetParameter(), '<test>'), caffe_pb2.TRAIN,
              device=device)
    monkeypatch.undo()
    net.share_diffs(share)
    assert bool(net._diff_groups) == share
    rng = np.random.default_rng(3)
    for param in net.learnable_params:
        param.data[...] = rng.uniform(-1, 1, param.shape)
    net.blobs['data'].data[...] = rng.standard_normal(net.blobs['data'].shape)
    net.blobs['label'].data[...] = [0, 4, 2, 1]
    for _ in range(2):
        net.clear_param_diffs()
        net.forward()
        net.backward()
    return [param.diff.copy() for param in net.learnable_params]


def test_shared_diffs_give_the_same_gradients_on_the_device(accel, monkeypatch):
    for got, want in zip(gradients(accel, True, monkeypatch),
                         gradients(accel, False, monkeypatch)):
        np.testing.assert_array_equal(got, want)
