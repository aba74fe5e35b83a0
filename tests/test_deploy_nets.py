"""Caffe's deploy nets from ../shared/nets build in TEST phase with the blob shapes Caffe logs for them
(written out below, not computed), and a batch-1 forward keeps them: LeNet, CIFAR-10 quick and full
(LRN WITHIN_CHANNEL), CaffeNet and AlexNet (grouped convs, LRN ACROSS_CHANNELS), GoogLeNet (Concat,
three stride-2 max pools whose sizes rely on Caffe's ceil rounding)."""
import os

import numpy as np
import pytest

from cct.net import Net
from cct.proto import caffe_pb2

LENET = {
    'data': (64, 1, 28, 28), 'conv1': (64, 20, 24, 24), 'pool1': (64, 20, 12, 12),
    'conv2': (64, 50, 8, 8), 'pool2': (64, 50, 4, 4), 'ip1': (64, 500), 'ip2': (64, 10),
    'prob': (64, 10),
}
CIFAR10_QUICK = {
    'data': (1, 3, 32, 32), 'conv1': (1, 32, 32, 32), 'pool1': (1, 32, 16, 16),
    'conv2': (1, 32, 16, 16), 'pool2': (1, 32, 8, 8), 'conv3': (1, 64, 8, 8),
    'pool3': (1, 64, 4, 4), 'ip1': (1, 64), 'ip2': (1, 10), 'prob': (1, 10),
}
CIFAR10_FULL = {
    'data': (1, 3, 32, 32), 'conv1': (1, 32, 32, 32), 'pool1': (1, 32, 16, 16),
    'norm1': (1, 32, 16, 16), 'conv2': (1, 32, 16, 16), 'pool2': (1, 32, 8, 8),
    'norm2': (1, 32, 8, 8), 'conv3': (1, 64, 8, 8), 'pool3': (1, 64, 4, 4), 'ip1': (1, 10),
    'prob': (1, 10),
}
CAFFENET = {
    'data': (10, 3, 227, 227), 'conv1': (10, 96, 55, 55), 'pool1': (10, 96, 27, 27),
    'norm1': (10, 96, 27, 27), 'conv2': (10, 256, 27, 27), 'pool2': (10, 256, 13, 13),
    'norm2': (10, 256, 13, 13), 'conv3': (10, 384, 13, 13), 'conv4': (10, 384, 13, 13),
    'conv5': (10, 256, 13, 13), 'pool5': (10, 256, 6, 6), 'fc6': (10, 4096), 'fc7': (10, 4096),
    'fc8': (10, 1000), 'prob': (10, 1000),
}
# AlexNet normalises before pooling (CaffeNet pools first): same sizes, other order.
ALEXNET = dict(CAFFENET, norm1=(10, 96, 55, 55), norm2=(10, 256, 27, 27))
GOOGLENET = {
    'data': (10, 3, 224, 224), 'conv1/7x7_s2': (10, 64, 112, 112),
    'pool1/3x3_s2': (10, 64, 56, 56),          # ceil((112 - 3) / 2) + 1; floor would give 55
    'pool1/norm1': (10, 64, 56, 56), 'conv2/3x3_reduce': (10, 64, 56, 56),
    'conv2/3x3': (10, 192, 56, 56), 'conv2/norm2': (10, 192, 56, 56),
    'pool2/3x3_s2': (10, 192, 28, 28),         # ceil((56 - 3) / 2) + 1; floor would give 27
    'inception_3a/1x1': (10, 64, 28, 28), 'inception_3a/3x3': (10, 128, 28, 28),
    'inception_3a/5x5': (10, 32, 28, 28), 'inception_3a/pool': (10, 192, 28, 28),
    'inception_3a/pool_proj': (10, 32, 28, 28), 'inception_3a/output': (10, 256, 28, 28),
    'inception_3b/output': (10, 480, 28, 28),
    'pool3/3x3_s2': (10, 480, 14, 14),         # ceil((28 - 3) / 2) + 1; floor would give 13
    'inception_4a/output': (10, 512, 14, 14), 'inception_4b/output': (10, 512, 14, 14),
    'inception_4c/output': (10, 512, 14, 14), 'inception_4d/output': (10, 528, 14, 14),
    'inception_4e/output': (10, 832, 14, 14),
    'pool4/3x3_s2': (10, 832, 7, 7),           # ceil((14 - 3) / 2) + 1; floor would give 6
    'inception_5a/output': (10, 832, 7, 7), 'inception_5b/output': (10, 1024, 7, 7),
    'pool5/7x7_s1': (10, 1024, 1, 1), 'loss3/classifier': (10, 1000), 'prob': (10, 1000),
}

DEPLOY_NETS = [
    ('lenet.prototxt', LENET, 9),
    ('cifar10_quick.prototxt', CIFAR10_QUICK, 13),
    ('cifar10_full.prototxt', CIFAR10_FULL, 14),
    ('bvlc_reference_caffenet/deploy.prototxt', CAFFENET, 24),
    ('bvlc_alexnet/deploy.prototxt', ALEXNET, 24),
    ('bvlc_googlenet/deploy.prototxt', GOOGLENET, 143 + 9),   # 9 inserted Splits
]


@pytest.mark.parametrize('path, shapes, num_layers', DEPLOY_NETS,
                         ids=[path for path, _, _ in DEPLOY_NETS])
def test_deploy_net_builds_with_caffes_shapes(shared, path, shapes, num_layers):
    net = Net(os.path.join(shared, 'nets', path), caffe_pb2.TEST)
    assert len(net.layers) == num_layers
    assert {name: net.blobs[name].data.shape for name in shapes} == shapes
    assert net.inputs == ['data']
    assert net.outputs == ['prob']
    batch1 = {name: (1,) + shape[1:] for name, shape in shapes.items()}
    net.blobs['data'].reshape(*batch1['data'])
    net.blobs['data'].data[...] = np.random.default_rng(0).standard_normal(batch1['data'])
    prob = net.forward()['prob']
    assert {name: net.blobs[name].data.shape for name in shapes} == batch1
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-5)


def test_googlenet_splits_are_named_as_caffe_names_them(shared):
    net = Net(os.path.join(shared, 'nets', 'bvlc_googlenet', 'deploy.prototxt'), caffe_pb2.TEST)
    splits = [name for name, layer in zip(net._layer_names, net.layers) if layer.type == 'Split']
    assert len(splits) == 9
    assert 'pool2/3x3_s2_pool2/3x3_s2_0_split' in splits
    assert 'inception_3a/output_inception_3a/output_0_split' in splits
    consumers = [net.bottom_names[name] for name in ('inception_3b/1x1', 'inception_3b/pool')]
    assert consumers == [['inception_3a/output_inception_3a/output_0_split_0'],
                         ['inception_3a/output_inception_3a/output_0_split_3']]
