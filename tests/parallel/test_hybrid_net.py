"""HybridNet on cpu + opencl:0 (PoCL in CI): LeNet trained with the batch split half and half, and
with the auto split, tracks the single-device run; the whole batch's statistics (BatchNorm in
training, a VALID-normalised loss with ignored labels, Accuracy) come out of uneven shares as
from one device; a run is repeatable; layers that mix the batch and batches too small to split
are refused by name."""

import numpy as np
import pytest

from cct import runtime
from cct.errors import CctError, NetError
from cct.io import parse_text
from cct.net import Net
from cct.parallel import HybridNet
from cct.proto import caffe_pb2
from cct.testing import lenet_train_input, step_on_mnist
from cct.solver import solver_class

BATCH = 16


def train(param, mnist, steps, devices=None, split='auto'):
    solver_param = caffe_pb2.SolverParameter(type='SGD', base_lr=0.01, momentum=0.9,
                                             lr_policy='inv', gamma=1e-4, power=0.75,
                                             weight_decay=5e-4, display=0, random_seed=1701,
                                             snapshot_after_train=False)
    solver_param.train_net_param.CopyFrom(param)
    runtime.set_mode_cpu()
    solver = solver_class('SGD')(solver_param, devices=devices, split=split)
    losses = step_on_mnist(solver, mnist, steps, BATCH)
    return losses, solver


@pytest.mark.parametrize('split', ['0.5,0.5', 'auto'])
def test_lenet_split_across_cpu_and_opencl_tracks_one_device(shared, mnist, ocl, split):
    """40 SGD steps: the loss within 1e-4 (relative) of the CPU's for 10 steps and 1e-3 after
    (the shares' float32 sums are added in another order than one device adds them)."""
    param = lenet_train_input(shared, BATCH)
    single, _ = train(param, mnist, 40)
    hybrid, solver = train(param, mnist, 40, devices=['cpu', ocl], split=split)
    assert single[-1] < single[0]
    np.testing.assert_allclose(hybrid[:10], single[:10], rtol=1e-4)
    np.testing.assert_allclose(hybrid, single, rtol=1e-3)
    net = solver.net
    assert sum(net.shares) == BATCH
    if split == 'auto':
        # Settled on proportional shares or on the CPU alone (PoCL shares its cores), after
        # passes that split the batch.
        assert net.splitter.settled and net.shares[0] > net.shares[1]
    else:
        assert net.shares == [8, 8]
    # The next forward computes with the primary's weights on every replica with images.
    net.forward_from_to()
    for replica, share in zip(net.replicas[1:], net.shares[1:]):
        for master, copy in zip(net.primary.learnable_params, replica.learnable_params):
            if share:
                np.testing.assert_array_equal(master.data, copy.data)


STATS_NET = '''
name: "stats"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 8 dim: 3 dim: 5 dim: 5 } shape { dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 }
                            bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv"
        scale_param { bias_term: true filler { type: "gaussian" std: 1 }
                      bias_filler { type: "gaussian" std: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
        loss_param { ignore_label: 4 } }
layer { name: "euclid" type: "EuclideanLoss" bottom: "ip" bottom: "ip2" top: "euclid"
        loss_weight: 0.5 }
layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "ip2"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy"
        top: "per_class" accuracy_param { ignore_label: 4 } }
'''


# BatchNorm out of place: the net fuses the Scale in place on its top and recomputes x_norm from
# the intact bottom (the other path of BatchNorm's backward).
STATS_NET_OUT_OF_PLACE = STATS_NET.replace(
    'bottom: "conv" top: "conv" }\nlayer { name: "scale" type: "Scale" bottom: "conv" top: "conv"',
    'bottom: "conv" top: "bnout" }\nlayer { name: "scale" type: "Scale" bottom: "bnout" '
    'top: "bnout"').replace('"relu" type: "ReLU" bottom: "conv" top: "conv"',
                            '"relu" type: "ReLU" bottom: "bnout" top: "bnout"').replace(
    '"ip" type: "InnerProduct" bottom: "conv"', '"ip" type: "InnerProduct" bottom: "bnout"')


def stats_param(text=STATS_NET):
    param = parse_text(text, caffe_pb2.NetParameter())
    # ip2 feeds euclid but is defined after it in the text above; keep Caffe's order.
    layers = list(param.layer)
    order = ['data', 'conv', 'bn', 'scale', 'relu', 'ip', 'ip2', 'loss', 'euclid', 'accuracy']
    del param.layer[:]
    param.layer.extend(sorted(layers, key=lambda layer: order.index(layer.name)))
    param.state.phase = caffe_pb2.TRAIN
    return param


def stats_inputs():
    rng = np.random.default_rng(5)
    data = rng.normal(size=(8, 3, 5, 5)) * np.arange(1, 9)[:, None, None, None]
    # Labels 4 (ignored) gather in the first two items, so the shares' valid counts differ.
    label = np.array([4, 4, 0, 1, 2, 3, 1, 0], np.float64)
    return data, label


def run_pass(net, data, label, passes=2):
    for _ in range(passes):
        net.clear_param_diffs()
        net.blobs['data'].data[...] = data
        net.blobs['label'].data[...] = label
        loss = net.forward_from_to()
        net.backward_from_to()
    return loss


@pytest.mark.parametrize('text', [STATS_NET, STATS_NET_OUT_OF_PLACE], ids=['in_place', 'recompute'])
def test_batch_statistics_are_the_whole_batchs(ocl, text):
    """Shares of 2 and 6 items, in float64: BatchNorm's batch mean and variance (and its running
    statistics), the VALID normaliser of a loss with ignored labels, EuclideanLoss's batch size
    and Accuracy's counts are the whole batch's, so every output and gradient is one device's."""
    assert STATS_NET_OUT_OF_PLACE.count('bnout') == 6
    data, label = stats_inputs()
    single = Net(stats_param(text), dtype=np.float64, device='cpu')
    hybrid = HybridNet(stats_param(text), dtype=np.float64, devices=['cpu', ocl],
                       split='0.25,0.75')
    hybrid.primary.copy_trained_layers_from(single.to_proto())
    expected = run_pass(single, data, label)
    actual = run_pass(hybrid, data, label)
    assert hybrid.shares == [2, 6]
    assert actual == pytest.approx(expected, rel=1e-10)
    for name in ('loss', 'euclid', 'accuracy', 'per_class'):
        np.testing.assert_allclose(hybrid.blobs[name].data, single.blobs[name].data,
                                   rtol=1e-10, err_msg=name)
    np.testing.assert_allclose(hybrid.blobs['ip'].data, single.blobs['ip'].data[:2], rtol=1e-10)
    for name in ('conv', 'bn', 'scale', 'ip', 'ip2'):
        for i, (mine, theirs) in enumerate(zip(hybrid.params[name], single.params[name])):
            np.testing.assert_allclose(mine.data, theirs.data, rtol=1e-10, atol=1e-12,
                                       err_msg='%s data %d' % (name, i))
            np.testing.assert_allclose(mine.diff, theirs.diff, rtol=1e-9, atol=1e-12,
                                       err_msg='%s diff %d' % (name, i))
    # Per-share statistics would be far off: the first share is two items of scale 1 and 2.
    share = Net(stats_param(), dtype=np.float64, device='cpu')
    share.copy_trained_layers_from(single.to_proto())
    share.blobs['data'].reshape((2, 3, 5, 5))
    share.blobs['label'].reshape((2,))
    share.reshape()
    share.blobs['data'].data[...] = data[:2]
    share.blobs['label'].data[...] = label[:2]
    share.forward_from_to()
    assert not np.allclose(share.params['bn'][0].data, single.params['bn'][0].data, rtol=1e-3)


def test_a_hybrid_run_is_repeatable(ocl):
    data, label = stats_inputs()
    weights = Net(stats_param(), device='cpu').to_proto()
    results = []
    for _ in range(2):
        net = HybridNet(stats_param(), devices=['cpu', ocl], split='0.5,0.5')
        net.primary.copy_trained_layers_from(weights)
        run_pass(net, data.astype(np.float32), label.astype(np.float32), passes=3)
        results.append([blob.diff.copy() for blob in net.learnable_params])
        net.close()
    for first, second in zip(*results):
        np.testing.assert_array_equal(first, second)


def test_a_device_with_no_image_sits_out(ocl):
    """A split that leaves a device no image runs the batch on the other; its replica's weights
    stay in step (the next pass that gives it images uses the primary's)."""
    data, label = stats_inputs()
    single = Net(stats_param(), dtype=np.float64, device='cpu')
    hybrid = HybridNet(stats_param(), dtype=np.float64, devices=[ocl, 'cpu'], split='0,1')
    hybrid.primary.copy_trained_layers_from(single.to_proto())
    expected, actual = run_pass(single, data, label), run_pass(hybrid, data, label)
    assert hybrid.shares == [0, 8]
    assert actual == pytest.approx(expected, rel=1e-10)
    # The primary (opencl:0) sat out but keeps BatchNorm's running statistics and the gradient.
    np.testing.assert_allclose(hybrid.params['bn'][0].data, single.params['bn'][0].data,
                               rtol=1e-10)
    np.testing.assert_allclose(hybrid.params['ip'][0].diff, single.params['ip'][0].diff,
                               rtol=1e-9)


def test_batch_mixing_layers_and_small_batches_are_refused(ocl):
    param = stats_param()
    concat = param.layer.add(name='join', type='Concat', bottom=['ip', 'ip2'], top=['join'])
    concat.concat_param.axis = 0
    with pytest.raises(NetError, match=r"Layer 'join' \(type Concat\) cannot run with the batch "
                                       'split across devices: it works along axis 0'):
        HybridNet(param, devices=['cpu', ocl], split='0.5,0.5')
    small = stats_param()
    small.layer[0].input_param.shape[0].dim[0] = 1
    small.layer[0].input_param.shape[1].dim[0] = 1
    with pytest.raises(CctError, match='a batch of 1 image cannot be split across 2 devices'):
        HybridNet(small, devices=['cpu', ocl])
    net = HybridNet(stats_param(), devices=['cpu', ocl], split='0.5,0.5')
    net.blobs['data'].reshape((1, 3, 5, 5))
    net.blobs['label'].reshape((1,))
    with pytest.raises(CctError, match='a batch of 1 image cannot be split'):
        net.forward_from_to()
    with pytest.raises(CctError, match='whole passes'):
        net.forward_from_to(0, 2)


def test_pycaffe_forward_with_inputs_on_a_hybrid_net(ocl):
    """``net.forward(data=..., label=...)`` fills the whole batch and returns the whole batch's
    outputs; ``net.blobs`` shows the sources' whole batch."""
    data, label = stats_inputs()
    single = Net(stats_param(), dtype=np.float64, device='cpu')
    hybrid = HybridNet(stats_param(), dtype=np.float64, devices=[ocl, 'cpu'], split='0.5,0.5')
    hybrid.primary.copy_trained_layers_from(single.to_proto())
    expected = single.forward(data=data, label=label)
    actual = hybrid.forward(data=data, label=label)
    assert sorted(actual) == sorted(expected) == ['accuracy', 'euclid', 'loss', 'per_class']
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-10, err_msg=name)
    assert hybrid.blobs['data'].shape == (8, 3, 5, 5)
    np.testing.assert_array_equal(hybrid.blobs['data'].data, data)


def test_an_error_in_one_share_is_raised_not_waited_for(ocl):
    """A bad label in the second share fails that replica's loss while the first waits for it at
    the loss's synchronisation: the error comes out, naming the layer, and nothing hangs."""
    data, label = stats_inputs()
    label[-1] = 9
    net = HybridNet(stats_param(), devices=['cpu', ocl], split='0.5,0.5')
    net.group.timeout = 60
    with pytest.raises(NetError, match=r"Layer 'loss' \(type SoftmaxWithLoss\): label 9 out of "
                                       r'range \[0, 5\)'):
        run_pass(net, data.astype(np.float32), label.astype(np.float32), passes=1)
    label[-1] = 1
    run_pass(net, data.astype(np.float32), label.astype(np.float32), passes=1)
    net.close()


def test_iter_size_accumulates_the_split_gradients_as_one_device(ocl):
    """iter_size 2, momentum, weight decay, 3 steps in float64: the hybrid solver's weights are the
    single device's (the other replicas' gradients are added to the primary's after each pass and
    zeroed there, so the accumulation counts each pass once)."""
    data, label = stats_inputs()
    solver_param = caffe_pb2.SolverParameter(type='SGD', base_lr=0.05, momentum=0.9,
                                             weight_decay=5e-3, lr_policy='fixed', iter_size=2,
                                             display=0, snapshot_after_train=False)
    solver_param.train_net_param.CopyFrom(stats_param())
    runtime.set_mode_cpu()
    single = solver_class('SGD')(solver_param, dtype=np.float64)
    hybrid = solver_class('SGD')(solver_param, dtype=np.float64, devices=[ocl, 'cpu'],
                                 split='0.75,0.25')
    hybrid.net.copy_trained_layers_from(single.net.to_proto())
    for solver in (single, hybrid):
        solver.net.blobs['data'].data[...] = data
        solver.net.blobs['label'].data[...] = label
        solver.step(3)
    assert hybrid.net.shares == [6, 2]
    for mine, theirs in zip(hybrid.net.learnable_params, single.net.learnable_params):
        np.testing.assert_allclose(mine.data, theirs.data, rtol=1e-9, atol=1e-12)


def test_the_auto_split_measures_again_when_the_input_shape_changes(ocl):
    data, label = stats_inputs()
    net = HybridNet(stats_param(), devices=['cpu', ocl])
    passes = 0
    while not net.splitter.settled:
        run_pass(net, data.astype(np.float32), label.astype(np.float32), passes=1)
        passes += 1
        assert passes < 20
    assert sum(net.shares) == 8
    net.blobs['data'].reshape((10, 3, 5, 5))
    net.blobs['label'].reshape((10,))
    run_pass(net, np.concatenate([data, data[:2]]).astype(np.float32),
             np.concatenate([label, label[:2]]).astype(np.float32), passes=1)
    assert net.shares == [5, 5] and not net.splitter.settled
    net.close()
