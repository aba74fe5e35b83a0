"""Every deploy net in ../shared/nets and ../shared/nets/zoo (and the V1-format nets after upgrade,
as their deploy form) exports with random weights, and ONNX Runtime's outputs equal cct's forward
within 1e-4 of the output's largest magnitude, at batch 1 and at a larger batch from one
dynamic-batch export; the nets under 10 M parameters also export at a fixed batch of 1.

Time: the ImageNet nets end in fully connected layers that fix their input size, so they run at
full size. The largest (GoogLeNet, ResNet-50 and the AlexNet-sized nets at 227x227) check the
dynamic batch at 2 instead of 4, the same symbolic batch at half the cct forward time, and skip the
fixed-batch export, whose only difference (static input dims) the small nets cover: each export of
a 60 M-parameter net serialises and checks 240 MB (several seconds on 2 shared cores).
"""
import os

import pytest

from cct.io.protofiles import read_text
from cct.io.upgrade import upgrade_net
from cct.net import Net
from cct.proto import caffe_pb2
from onnx_helpers import assert_matches, randomize

# (path under nets/, dynamic batch checked)
DEPLOY_NETS = [
    ('lenet.prototxt', 4),
    ('cifar10_quick.prototxt', 4),
    ('cifar10_full.prototxt', 4),
    ('bvlc_reference_caffenet/deploy.prototxt', 2),
    ('bvlc_alexnet/deploy.prototxt', 2),
    ('bvlc_googlenet/deploy.prototxt', 2),
    ('zoo/resnet50_deploy.prototxt', 2),
    ('zoo/squeezenet_v1.1_deploy.prototxt', 4),
    ('zoo/mobilenet_deploy.prototxt', 4),
    ('zoo/mobilenet_v2_deploy.prototxt', 4),
    ('zoo/bvlc_reference_rcnn_ilsvrc13/deploy.prototxt', 2),
    ('zoo/finetune_flickr_style/deploy.prototxt', 2),
]

# The V1 nets are train_val nets of these datasets: (channels, image size when not cropped).
V1_NETS = {
    'zoo/v1/lenet_train_test_v1.prototxt': (1, 28),
    'zoo/v1/cifar10_quick_train_test_v1.prototxt': (3, 32),
    'zoo/v1/caffenet_train_val_v1.prototxt': (3, 256),
    'zoo/v1/googlenet_train_val_v1.prototxt': (3, 256),
}
_NEEDS_LABELS = {'Accuracy', 'SoftmaxWithLoss'}


def _export_and_compare(net, tmp_path, larger_batch):
    randomize(net)
    if sum(blob.count for blob in net.learnable_params) < 10_000_000:
        fixed = tmp_path / 'fixed.onnx'
        net.export_onnx(fixed, batch=1)
        assert_matches(net, fixed, [1])
    dynamic = tmp_path / 'dynamic.onnx'
    net.export_onnx(dynamic, dynamic_batch=True)
    assert_matches(net, dynamic, [1, larger_batch], seed=2)


@pytest.mark.parametrize('path, dynamic_batch', DEPLOY_NETS, ids=[p for p, _ in DEPLOY_NETS])
def test_deploy_net_exports_exactly(shared, tmp_path, path, dynamic_batch):
    net = Net(os.path.join(shared, 'nets', path), caffe_pb2.TEST)
    _export_and_compare(net, tmp_path, dynamic_batch)


def deploy_form(param, channels, size):
    """A train_val net as its deploy net: the TEST data layer becomes an Input of its batch of 1,
    the dataset's channels and the crop size; the layers that read labels are dropped."""
    deploy = caffe_pb2.NetParameter(name=param.name)
    for layer in param.layer:
        phases = [rule.phase for rule in layer.include if rule.HasField('phase')]
        if phases and caffe_pb2.TEST not in phases:
            continue
        if layer.type == 'Data':
            crop = layer.transform_param.crop_size or size
            deploy.layer.add(name=layer.name, type='Input', top=[layer.top[0]]).input_param \
                .shape.add(dim=[1, channels, crop, crop])
        elif layer.type not in _NEEDS_LABELS:
            deploy.layer.add().CopyFrom(layer)
    return deploy


@pytest.mark.parametrize('path', sorted(V1_NETS))
def test_v1_net_after_upgrade_exports_exactly(shared, tmp_path, path):
    full = os.path.join(shared, 'nets', path)
    param = read_text(full, caffe_pb2.NetParameter, 'net prototxt')
    assert param.layers and not param.layer   # really the V1 format
    upgrade_net(param, full)
    net = Net(deploy_form(param, *V1_NETS[path]), caffe_pb2.TEST)
    _export_and_compare(net, tmp_path, 2 if 'net_train' in path else 4)
