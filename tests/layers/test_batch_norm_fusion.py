"""BatchNorm's per-channel kernels (cct/kernels/channel.pyx), the Scale fused into it at net build
(cct/layers/fusion.py) and what it keeps for the backward."""
import numpy as np
import pytest

from cct.devices import get_device
from cct.devices.composed_norm import ComposedNormMixin
from cct.devices.cpu import CPUDevice
from cct.io.protofiles import parse_text
from cct.kernels import channel
from cct.net import Net
from cct.proto import caffe_pb2
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

SCALE = ('type: "Scale" scale_param { bias_term: true filler { type: "uniform" min: 0.5 max: 2 } '
         'bias_filler { type: "gaussian" } }')


@pytest.fixture(params=['planes', 'channels'])
def reduction(request):
    """Both ways the kernels reduce: plane by plane, and channel by channel (short planes)."""
    previous = channel.set_short_plane(0 if request.param == 'planes' else 1 << 30)
    yield request.param
    channel.set_short_plane(previous)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('inner', [1, 7, 33, 77])   # 77: a block of 64, one of 8, a tail of 5
def test_channel_kernels_match_numpy(dtype, inner, reduction):
    gen = np.random.default_rng(inner)
    x = (gen.standard_normal((3, 5, inner)) * 3 + 1).astype(dtype)
    values = gen.uniform(0.5, 2, 5).astype(dtype)
    for op, ufunc in (('add', np.add), ('sub', np.subtract), ('mul', np.multiply),
                      ('div', np.divide)):
        out = np.empty_like(x)
        channel.channel_op(op, x.reshape(-1), values, out.reshape(-1), inner)
        np.testing.assert_array_equal(out, ufunc(x, values.reshape(1, 5, 1)))
        in_place = x.copy()
        channel.channel_op(op, in_place.reshape(-1), values, in_place.reshape(-1), inner)
        np.testing.assert_array_equal(in_place, out)
    product = np.empty_like(x)
    channel.multiply(x.reshape(-1), x[::-1].copy().reshape(-1), product.reshape(-1))
    np.testing.assert_array_equal(product, x * x[::-1])
    sums = np.ones(5, dtype)
    channel.channel_sum(x.reshape(-1), sums, inner, True)
    # Summed in the dtype in another order than numpy's: float32 differs in the last bits.
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(sums, 1 + x.sum(axis=(0, 2), dtype=np.float64), rtol=rtol)
    mean, variance = np.empty(5, dtype), np.empty(5, dtype)
    channel.batch_norm_statistics(x.reshape(-1), mean, variance, inner)
    wide = x.astype(np.float64)
    np.testing.assert_allclose(mean, wide.mean(axis=(0, 2)), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(variance, wide.var(axis=(0, 2)), rtol=rtol)


def test_channel_kernels_refuse_mismatched_arrays():
    x = np.zeros(12)
    with pytest.raises(ValueError, match='do not split into'):
        channel.channel_op('add', x, np.zeros(5), x, 1)
    with pytest.raises(ValueError, match='out has 11 values'):
        channel.channel_op('add', x, np.zeros(3), np.zeros(11), 4)


def test_statistics_of_a_large_offset_stay_accurate(reduction):
    """One pass, yet no E[x^2] - E[x]^2 cancellation: a mean of 1e4 and a spread of 1e-2."""
    gen = np.random.default_rng(0)
    x = (1e4 + 1e-2 * gen.standard_normal((4, 2, 500))).astype(np.float64)
    mean, variance = np.empty(2), np.empty(2)
    channel.batch_norm_statistics(x.reshape(-1), mean, variance, 500)
    np.testing.assert_allclose(variance, x.var(axis=(0, 2)), rtol=1e-9)


class _Composed(ComposedNormMixin, CPUDevice):
    """The CPU device with the compositions OpenCL runs in place of BatchNorm's kernels."""


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('recompute', [False, True])
@pytest.mark.parametrize('global_stats', [False, True])
@pytest.mark.parametrize('spatial', [(5, 6), (7, 11)])   # 30: one block of 16 and a tail; 77
def test_kernels_equal_the_composition(dtype, recompute, global_stats, spatial, reduction):
    """The CPU kernels against the OpenCL twin's composition run on the CPU: the forward bit for
    bit; the backward to the reordering of its sums."""
    cpu, composed = get_device('cpu'), _Composed()
    gen = np.random.default_rng(5)
    shape, inner = (3, 4) + spatial, spatial[0] * spatial[1]
    x = gen.standard_normal(shape).astype(dtype)
    scale, bias = gen.uniform(0.5, 2, 4).astype(dtype), gen.standard_normal(4).astype(dtype)
    results = []
    for device in (cpu, composed):
        mean, variance = np.empty(4, dtype), np.empty(4, dtype)
        device.batch_norm_statistics(x, mean, variance, inner)
        std = np.sqrt(variance + dtype(1e-5))
        out, normalised = np.empty_like(x), np.empty_like(x)
        device.batch_norm_forward(x, mean, std, out, inner, scale, bias, normalised)
        dz = np.random.default_rng(6).standard_normal(shape).astype(dtype)
        dy, dx, sums = np.empty_like(x), np.empty_like(x), np.empty(16, dtype)
        device.batch_norm_backward(dz, x if recompute else normalised, mean, std, sums, inner,
                                   recompute=recompute, scale=scale, scaled_diff=dy,
                                   bottom_diff=dx, global_stats=global_stats)
        results.append((mean, variance, out, normalised, dy, sums, dx))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for mine, theirs in zip(results[0][:2], results[1][:2]):
        np.testing.assert_allclose(mine, theirs, rtol=rtol, atol=rtol)
    # Given the same statistics, the forward is the composition's operations, bit for bit.
    out = np.empty_like(x)
    composed.batch_norm_forward(x, results[0][0], np.sqrt(results[0][1] + dtype(1e-5)), out,
                                inner, scale, bias)
    np.testing.assert_array_equal(results[0][2], out)
    np.testing.assert_array_equal(results[0][4], results[1][4])   # dy
    for mine, theirs in zip(results[0][5:], results[1][5:]):
        np.testing.assert_allclose(mine, theirs, rtol=rtol * 10, atol=rtol * 10)


def _device(kind):
    """The CPU, or opencl:0 (skipping where there is none, as tests/devices do)."""
    if kind == 'cpu':
        return get_device('cpu')
    from cct import devices
    if devices.count('opencl') == 0:
        pytest.skip('no OpenCL device: %s' % devices.unavailable('opencl'))
    return devices.get_device('opencl:0')


@pytest.mark.parametrize('kind', ['cpu', 'opencl'])
def test_recomputing_x_norm_gradient(kind):
    """The backward that recomputes x_norm from the bottom (what a net asks of a BatchNorm whose
    bottom stays intact) passes the gradient check; the layer keeps nothing of the input's size."""
    layer, bottom, top = make_layer('type: "BatchNorm"', [(2, 3, 2, 2)], seed=2,
                                    device=_device(kind))
    layer.recompute = True
    GradientChecker(1e-2, 1e-4).check_exhaustive(layer, bottom, top)
    assert layer.x_norm is None


class FusedPair:
    """A BatchNorm and a Scale in place on its top, run fused, as one layer for the checker."""

    def __init__(self, shape, inplace, device=None, use_global_stats=False):
        text = 'type: "BatchNorm"' + (' batch_norm_param { use_global_stats: true }'
                                      if use_global_stats else '')
        self.bn, self.bottom, self.top = make_layer(text, [shape], seed=4, inplace=inplace,
                                                    device=device)
        self.bn.param_propagate_down = [False] * 3
        if use_global_stats:
            gen = np.random.default_rng(8)
            self.bn.blobs[0].data[...] = gen.standard_normal(shape[1])
            self.bn.blobs[1].data[...] = gen.uniform(0.5, 2.0, shape[1])
            self.bn.blobs[2].data[...] = 1.0
        self.scale, _, _ = make_layer(SCALE, [shape], seed=1, device=device)
        self.bn.recompute = not inplace
        self.bn.scale_layer, self.scale.batch_norm = self.scale, self.bn
        self.blobs = self.scale.blobs
        self.param_propagate_down = self.scale.param_propagate_down
        self.device = self.bn.device

    def describe(self):
        return 'BatchNorm + Scale (fused)'

    def reshape(self, bottom, top):
        self.bn.reshape(bottom, top)
        self.scale.reshape(top, top)

    def forward(self, bottom, top):
        self.bn.forward_fused(bottom, top, top)

    def backward(self, top, propagate_down, bottom):
        self.bn.backward_fused(top, propagate_down, bottom, top, [True])


@pytest.mark.parametrize('kind', ['cpu', 'opencl'])
@pytest.mark.parametrize('inplace', [False, True])
@pytest.mark.parametrize('use_global_stats', [False, True])
def test_fused_pair_gradient(kind, inplace, use_global_stats):
    pair = FusedPair((2, 3, 2, 3), inplace, device=_device(kind),
                     use_global_stats=use_global_stats)
    GradientChecker(1e-2, 1e-4).check_exhaustive(pair, pair.bottom, pair.top)
    # Nothing of the input's size is kept where the bottom survives; one x_norm where it is
    # overwritten; never the Scale's own bottom copy.
    assert (pair.bn.x_norm is None) == (not inplace)
    assert pair.scale.bottom_copy is None


def _net_text(bn_top):
    """conv -> BatchNorm (in place, or to its own top as MobileNet v2's) -> Scale (in place) ->
    ReLU -> InnerProduct -> loss."""
    scale_bottom = bn_top
    return '''
name: "bn_scale"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 2 dim: 5 dim: 5 } shape { dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 bias_term: false
                            weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "%s" }
layer { name: "scale" type: "Scale" bottom: "%s" top: "%s"
        scale_param { bias_term: true filler { type: "uniform" min: 0.5 max: 2 }
                      bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu" type: "ReLU" bottom: "%s" top: "%s" }
layer { name: "ip" type: "InnerProduct" bottom: "%s" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
''' % (bn_top, scale_bottom, scale_bottom, scale_bottom, scale_bottom, scale_bottom)


def _net(text, watched=False, device=None):
    param = parse_text(text, caffe_pb2.NetParameter(), '<bn_scale>')
    from cct import rng
    rng.set_random_seed(3)
    net = Net(param, caffe_pb2.TRAIN, dtype=np.float64, device=device)
    gen = np.random.default_rng(0)
    net.blobs['data'].data[...] = gen.standard_normal(net.blobs['data'].shape)
    net.blobs['label'].data[...] = [0, 1, 2, 1][:net.blobs['label'].count]
    if watched:   # a callback per layer: the net runs every layer on its own (unfused)
        net.after_forward(lambda i: None)
        net.before_backward(lambda i: None)
    return net


@pytest.mark.parametrize('bn_top', ['conv', 'conv/bn'])
def test_fused_net_equals_the_layer_by_layer_net(bn_top):
    fused, plain = _net(_net_text(bn_top)), _net(_net_text(bn_top), watched=True)
    assert fused.fused_pairs == {2: 3}
    bn = fused.layer_dict['bn']
    assert bn.recompute == (bn_top != 'conv')
    for net in (fused, plain):
        net.clear_param_diffs()
        for _ in range(2):   # the second pass uses running statistics that both updated alike;
            net.forward()    # the param diffs accumulate over both
            net.backward()
    assert bn.fused and not plain.layer_dict['bn'].fused
    for name in fused.blobs:
        np.testing.assert_allclose(fused.blobs[name].data, plain.blobs[name].data, rtol=1e-12,
                                   atol=1e-14, err_msg=name)
        # Sums of the Scale's and BatchNorm's gradients run in another order when fused.
        np.testing.assert_allclose(fused.blobs[name].diff, plain.blobs[name].diff, rtol=1e-10,
                                   atol=1e-13, err_msg=name)
    _same_params(fused, plain)
    # Fused, the net keeps no copy of the Scale's bottom, and no x_norm where the bottom survives.
    assert fused.layer_dict['scale'].bottom_copy is None
    assert (bn.x_norm is None) == (bn_top != 'conv')
    assert plain.layer_dict['scale'].bottom_copy is not None


@pytest.mark.parametrize('bn_top', ['conv', 'conv/bn'])
def test_fused_net_on_opencl_equals_the_cpu(bn_top):
    ocl = _device('opencl')
    cpu_net, ocl_net = _net(_net_text(bn_top)), _net(_net_text(bn_top), device=ocl)
    assert ocl_net.fused_pairs == cpu_net.fused_pairs == {2: 3}
    for name in cpu_net.params:
        for mine, theirs in zip(cpu_net.params[name], ocl_net.params[name]):
            theirs.data[...] = mine.data
    for net in (cpu_net, ocl_net):
        net.forward()
        net.backward()
    for name in ('conv', 'scale', 'ip'):
        for mine, theirs in zip(cpu_net.params[name], ocl_net.params[name]):
            np.testing.assert_allclose(theirs.diff, mine.diff, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ocl_net.blobs[bn_top].data, cpu_net.blobs[bn_top].data,
                               rtol=1e-10, atol=1e-12)


def _same_params(fused, plain):
    for name in ('conv', 'bn', 'scale', 'ip'):
        for mine, theirs in zip(fused.params[name], plain.params[name]):
            np.testing.assert_allclose(mine.data, theirs.data, rtol=1e-12)
            np.testing.assert_allclose(mine.diff, theirs.diff, rtol=1e-10, atol=1e-13)


def test_a_batch_of_one_overwrites_the_scale_diff_as_caffe():
    """Caffe's Scale overwrites its learned scale's diff when the outer dimension is 1 (and the
    bias's accumulates): the fused backward does the same."""
    text = _net_text('conv/bn').replace('shape { dim: 4 dim: 2 dim: 5 dim: 5 } shape { dim: 4 }',
                                        'shape { dim: 1 dim: 2 dim: 5 dim: 5 } shape { dim: 1 }')
    fused, plain = _net(text), _net(text, watched=True)
    for net in (fused, plain):
        net.blobs['data'].data[...] = np.random.default_rng(1).standard_normal((1, 2, 5, 5))
        net.blobs['label'].data[...] = 2
        net.clear_param_diffs()
        net.forward()
        net.backward()
        once = [blob.diff.copy() for blob in net.params['scale']]
        net.backward()
        np.testing.assert_allclose(net.params['scale'][0].diff, once[0], rtol=1e-12)
        np.testing.assert_allclose(net.params['scale'][1].diff, 2 * once[1], rtol=1e-12)
    assert fused.layer_dict['bn'].fused
    _same_params(fused, plain)


def test_a_run_ending_at_the_batch_norm_leaves_its_own_output():
    net = _net(_net_text('conv/bn'))
    net.forward(end='bn')
    x = net.blobs['conv'].data
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    expected = (x - mean.reshape(1, 3, 1, 1)) / np.sqrt(var.reshape(1, 3, 1, 1) + 1e-5)
    np.testing.assert_allclose(net.blobs['conv/bn'].data, expected, rtol=1e-6, atol=1e-7)
    assert not net.layer_dict['bn'].fused
    # The rest of the net then runs on: the Scale on its own, then a backward (unfused, since
    # the forward was not) gives the whole net's gradients.
    net.forward(start='scale')
    net.backward()
    reference = _net(_net_text('conv/bn'), watched=True)
    reference.forward()
    reference.backward()
    np.testing.assert_allclose(net.params['scale'][0].diff, reference.params['scale'][0].diff,
                               rtol=1e-12)


def test_unfused_backward_after_a_fused_forward():
    """A backward run in parts (or watched) after a fused forward: the Scale reads x_norm from
    the BatchNorm, which recomputes it."""
    net = _net(_net_text('conv/bn'))
    reference = _net(_net_text('conv/bn'), watched=True)
    for each in (net, reference):
        each.forward()
        each.backward(end='relu')
    net.backward(start='scale')     # the Scale alone, then the BatchNorm alone
    reference.backward(start='scale')
    for name in ('scale', 'conv'):
        np.testing.assert_allclose(net.params[name][0].diff, reference.params[name][0].diff,
                                   rtol=1e-12)


def test_a_batch_norm_top_read_elsewhere_is_not_fused():
    """A layer between the BatchNorm and the Scale, or a Scale not in place: Caffe's BatchNorm
    output stays observable, so nothing is fused."""
    text = _net_text('conv/bn').replace(
        'layer { name: "scale" type: "Scale" bottom: "conv/bn" top: "conv/bn"',
        'layer { name: "other" type: "ReLU" bottom: "conv" top: "other" }\n'
        'layer { name: "scale" type: "Scale" bottom: "conv/bn" top: "conv/bn"')
    assert _net(text).fused_pairs == {}
    not_in_place = _net_text('conv/bn').replace(
        'bottom: "conv/bn" top: "conv/bn"\n        scale_param',
        'bottom: "conv/bn" top: "scaled"\n        scale_param').replace(
        'layer { name: "relu" type: "ReLU" bottom: "conv/bn" top: "conv/bn" }',
        'layer { name: "relu" type: "ReLU" bottom: "scaled" top: "conv/bn2" }').replace(
        'bottom: "conv/bn" top: "ip"', 'bottom: "conv/bn2" top: "ip"')
    assert 'top: "scaled"' in not_in_place
    assert _net(not_in_place).fused_pairs == {}


def test_time_reports_cores_and_fused_pairs(tmp_path, caplog):
    import argparse
    import logging
    from cct.log import logger
    from cct.tools import time as cct_time
    path = tmp_path / 'net.prototxt'
    path.write_text(_net_text('conv'))
    logger.setLevel(logging.INFO)
    with caplog.at_level(logging.INFO, logger=logger.name):
        cct_time.run(argparse.Namespace(model=str(path), iterations=2, phase='', gpu='',
                                        level=0, stage='', devices='', split=''))
    text = caplog.text
    assert 'scale (Scale)  [forward 0.000, backward 0.000]  fused into bn' in text
    from cct import kernels
    threads = kernels.max_threads()
    assert 'of %d threads):' % threads in text
    assert ' cores ' in text and '/%d  bn (BatchNorm)' % threads in text
    assert ('Passes keeping under 1.5 cores busy' in text) == (threads > 1)


def test_a_net_without_backward_keeps_no_x_norm():
    """A deploy-style net (no loss, BatchNorm in place): nothing of the input's size is kept."""
    text = _net_text('conv').replace(
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }',
        '')
    net = _net(text)
    assert net.fused_pairs == {2: 3}
    net.forward()
    bn = net.layer_dict['bn']
    assert not bn.backward_runs and bn.x_norm is None
    assert net.layer_dict['scale'].bottom_copy is None
