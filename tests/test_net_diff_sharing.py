"""Net.share_diffs (cct/net.py, netgraph.diff_sharing_groups): in training, every blob's diff that
is dead outside its span of backward layers shares a buffer with others whose spans do not overlap.
The gradients the solver uses stay bit for bit what a diff per blob gives; blobs whose diff buffer
is another's view (Flatten, a one-bottom Concat), loss-weighted tops and a Python layer's blobs
keep their own; and without share_diffs every blob but the Split tops keeps Caffe's diff."""
import numpy as np
import pytest

from cct.io import parse_text
from cct.net import Net
from cct.proto import caffe_pb2

# In-place BatchNorm + Scale + ReLU, a residual Eltwise through Splits, a Flatten and a one-bottom
# Concat (diff views), a two-bottom Concat, and a loss-weighted intermediate top.
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
layer { name: "bn2" type: "BatchNorm" bottom: "conv2" top: "bn2" }
layer { name: "sum" type: "Eltwise" bottom: "conv1" bottom: "bn2" top: "sum" }
layer { name: "relu2" type: "ReLU" bottom: "sum" top: "sum" }
layer { name: "pool" type: "Pooling" bottom: "sum" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "flat" type: "Flatten" bottom: "pool" top: "flat" }
layer { name: "ip1" type: "InnerProduct" bottom: "flat" top: "ip1"
        inner_product_param { num_output: 6 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "tanh" type: "TanH" bottom: "ip1" top: "tanh" loss_weight: 0.1 }
layer { name: "one" type: "Concat" bottom: "tanh" top: "one" }
layer { name: "ip2" type: "InnerProduct" bottom: "one" top: "ip2"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "ip3" type: "InnerProduct" bottom: "one" top: "ip3"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "cat" type: "Concat" bottom: "ip2" bottom: "ip3" top: "cat" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "cat" bottom: "label" top: "loss" }
'''


def build(monkeypatch=None):
    """The net with fixed weights and data; with ``monkeypatch``, with no diff sharing at all (a
    diff buffer per blob, Caffe's memory layout)."""
    if monkeypatch is not None:
        monkeypatch.setattr('cct.net.diff_sharing_groups', lambda *args, **kwargs: [])
    net = Net(parse_text(NET, caffe_pb2.NetParameter(), '<test>'), caffe_pb2.TRAIN)
    rng = np.random.default_rng(3)
    for param in net.learnable_params:
        param.data[...] = rng.uniform(0.5, 1.5, param.shape) * rng.choice([-1, 1], param.shape)
    net.blobs['data'].data[...] = rng.standard_normal(net.blobs['data'].shape)
    net.blobs['label'].data[...] = [0, 9, 4, 2]
    if monkeypatch is not None:
        monkeypatch.undo()
    return net


def train_pass(net, passes=2):
    """Param gradients and every blob's diff after ``passes`` forward-backward passes (a second
    pass would see anything the first left in a shared buffer)."""
    for _ in range(passes):
        for param in net.learnable_params:
            param.diff[...] = 0
        net.forward()
        net.backward()
    return ([param.diff.copy() for param in net.learnable_params],
            {name: blob.diff.copy() for name, blob in net.blobs.items()})


@pytest.mark.parametrize('share', [False, True])
def test_shared_diffs_leave_every_param_gradient_bit_for_bit(share, monkeypatch):
    """Also without share_diffs, where only Split tops share: the Split top that feeds the
    one-bottom Concat shares its buffer with that Concat's top, which used to let it share
    with a top of the next Split too (whose backward then overwrote its own input)."""
    shared, separate = build(), build(monkeypatch)
    shared.share_diffs(share)
    assert shared.diffs_shared == share and not separate.diffs_shared
    assert shared._diff_groups and not separate._diff_groups
    got, _ = train_pass(shared)
    want, _ = train_pass(separate)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_only_blobs_nobody_can_see_differently_share(monkeypatch):
    net = build()
    net.share_diffs()
    grouped = {net.blob_names[i] for group in net._diff_groups for i in group}
    # The diff views (Flatten's, the one-bottom Concat's, both sides), the loss-weighted top
    # (Caffe's insert_splits moves tanh's weight to its Split's first top), the net's inputs'
    # and the loss's own diffs stay private.
    assert grouped.isdisjoint({'pool', 'flat', 'tanh_tanh_0_split_0', 'tanh_tanh_0_split_1',
                               'one', 'data', 'label', 'loss'})
    assert {'conv1', 'conv2', 'bn2', 'sum', 'ip1', 'ip2', 'ip3', 'cat'} <= grouped
    buffers = {id(net.blobs[name].diff.base) for name in grouped}
    assert len(buffers) == len(net._diff_groups) < len(grouped) / 2
    _, diffs = train_pass(net)
    _, want = train_pass(build(monkeypatch))
    for name in ('pool', 'flat', 'tanh_tanh_0_split_0', 'tanh_tanh_0_split_1', 'one'):
        np.testing.assert_array_equal(diffs[name], want[name])


def test_without_share_diffs_only_split_tops_are_scratch_and_turning_it_off_restores_caffes(
        monkeypatch):
    net = build()
    _, want = train_pass(build(monkeypatch))
    net.share_diffs()
    train_pass(net)
    net.share_diffs(False)
    _, diffs = train_pass(net)
    splits = {name for name in net.blobs if '_split_' in name}
    assert splits
    for name, diff in want.items():
        if name not in splits:
            np.testing.assert_array_equal(diffs[name], diff, err_msg=name)


def test_a_python_layers_blobs_keep_their_diffs(tmp_path, monkeypatch):
    (tmp_path / 'cct_test_twice.py').write_text(
        'import cct as caffe\n'
        'class Twice(caffe.Layer):\n'
        '    def setup(self, bottom, top): pass\n'
        '    def reshape(self, bottom, top): top[0].reshape(*bottom[0].data.shape)\n'
        '    def forward(self, bottom, top): top[0].data[...] = 2 * bottom[0].data\n'
        '    def backward(self, top, propagate_down, bottom):\n'
        '        bottom[0].diff[...] = 2 * top[0].diff\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    text = NET.replace('bottom: "flat" top: "ip1"', 'bottom: "twice" top: "ip1"').replace(
        'layer { name: "ip1"', 'layer { name: "twice" type: "Python" bottom: "flat" top: "twice" '
        'python_param { module: "cct_test_twice" layer: "Twice" } }\nlayer { name: "ip1"')
    net = Net(parse_text(text, caffe_pb2.NetParameter(), '<test>'), caffe_pb2.TRAIN)
    net.share_diffs()
    grouped = {net.blob_names[i] for group in net._diff_groups for i in group}
    assert 'twice' not in grouped and 'ip1' in grouped


@pytest.mark.parametrize('share', [False, True])
def test_a_reshape_to_a_larger_batch_keeps_gradients_right(share, monkeypatch):
    net, reference = build(), build(monkeypatch)
    net.share_diffs(share)
    for each in (net, reference):
        each.blobs['data'].reshape(8, 3, 6, 6)
        each.blobs['label'].reshape(8)
        each.reshape()
        each.blobs['data'].data[...] = np.random.default_rng(1).standard_normal((8, 3, 6, 6))
        each.blobs['label'].data[...] = np.arange(8)
    for a, b in zip(train_pass(net)[0], train_pass(reference)[0]):
        np.testing.assert_array_equal(a, b)
