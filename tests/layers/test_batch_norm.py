"""Tests of cct/layers/batch_norm.py, and of BatchNorm + Scale inside a TRAIN net."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.io.protofiles import parse_text
from cct.net import Net
from cct.proto import caffe_pb2
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

SHAPE = (2, 3, 2, 2)
EPS = float(np.float32(1e-5))


def naive_batch_norm(x, mean, variance, eps=EPS):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean.reshape(shape)) / np.sqrt(variance.reshape(shape) + eps)


def batch_statistics(x):
    axes = (0,) + tuple(range(2, x.ndim))
    return x.mean(axis=axes), x.var(axis=axes)


def test_setup_blobs_and_fixed_param_specs():
    layer, _, top = make_layer('type: "BatchNorm"', [SHAPE])
    assert top[0].shape == SHAPE
    assert [blob.shape for blob in layer.blobs] == [(3,), (3,), (1,)]
    assert all((blob.data == 0).all() for blob in layer.blobs)
    assert [spec.lr_mult for spec in layer.param.param] == [0, 0, 0]
    given, _, _ = make_layer('type: "BatchNorm" param { lr_mult: 0 decay_mult: 0 }', [SHAPE])
    assert [spec.lr_mult for spec in given.param.param] == [0, 0, 0]
    assert given.param.param[0].decay_mult == 0


@pytest.mark.parametrize('specs', ['param { lr_mult: 1 }',
                                   'param { lr_mult: 0 } param { decay_mult: 0 }'])
def test_learning_the_statistics_is_an_error(specs):
    with pytest.raises(NetError, match='Cannot configure batch normalization statistics'):
        make_layer('type: "BatchNorm" ' + specs, [SHAPE])


def test_train_forward_uses_batch_statistics():
    layer, bottom, top = make_layer('type: "BatchNorm"', [SHAPE], seed=1)
    assert not layer.use_global_stats
    x = bottom[0].data.copy()
    layer.forward(bottom, top)
    mean, variance = batch_statistics(x)
    np.testing.assert_allclose(top[0].data, naive_batch_norm(x, mean, variance), rtol=1e-12)


def test_train_statistics_accumulate_over_two_forwards():
    layer, bottom, top = make_layer('type: "BatchNorm" batch_norm_param '
                                    '{ moving_average_fraction: 0.9 }', [SHAPE], seed=1)
    fraction = float(np.float32(0.9))
    m = SHAPE[0] * SHAPE[2] * SHAPE[3]
    first = bottom[0].data.copy()
    layer.forward(bottom, top)
    mean1, var1 = batch_statistics(first)
    np.testing.assert_allclose(layer.blobs[2].data, [1.0])
    np.testing.assert_allclose(layer.blobs[0].data, mean1, rtol=1e-12)
    # The running variance is the unbiased one: m/(m-1) times the batch variance.
    np.testing.assert_allclose(layer.blobs[1].data, var1 * m / (m - 1), rtol=1e-12)

    second = 3 * np.random.default_rng(9).standard_normal(SHAPE) + 1
    bottom[0].data[...] = second
    layer.forward(bottom, top)
    mean2, var2 = batch_statistics(second)
    np.testing.assert_allclose(layer.blobs[2].data, [fraction + 1], rtol=1e-12)
    np.testing.assert_allclose(layer.blobs[0].data, mean2 + fraction * mean1, rtol=1e-12)
    np.testing.assert_allclose(layer.blobs[1].data, (var2 + fraction * var1) * m / (m - 1),
                               rtol=1e-12)
    # The output itself always uses the biased batch variance.
    np.testing.assert_allclose(top[0].data, naive_batch_norm(second, mean2, var2), rtol=1e-12)


def test_no_correction_with_one_value_per_channel():
    layer, bottom, top = make_layer('type: "BatchNorm"', [(1, 3)], seed=1)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(layer.blobs[1].data, 0)
    np.testing.assert_array_equal(top[0].data, 0)


def stored_statistics(layer, seed=3):
    gen = np.random.default_rng(seed)
    layer.blobs[0].data[...] = gen.standard_normal(3)
    layer.blobs[1].data[...] = gen.uniform(0.5, 2.0, 3)
    layer.blobs[2].data[...] = 2.5


def test_test_phase_uses_global_statistics():
    layer, bottom, top = make_layer('type: "BatchNorm"', [SHAPE], seed=1,
                                    phase=caffe_pb2.TEST)
    assert layer.use_global_stats
    stored_statistics(layer)
    saved = [blob.data.copy() for blob in layer.blobs]
    layer.forward(bottom, top)
    expected = naive_batch_norm(bottom[0].data, saved[0] / 2.5, saved[1] / 2.5)
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-12)
    for blob, before in zip(layer.blobs, saved):
        np.testing.assert_array_equal(blob.data, before)
    # The backward is the linear map's: dy / sqrt(var + eps).
    top[0].diff[...] = np.random.default_rng(4).standard_normal(SHAPE)
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff,
                               top[0].diff / np.sqrt(saved[1] / 2.5 + EPS).reshape(1, 3, 1, 1),
                               rtol=1e-12)


def test_use_global_stats_overrides_the_phase():
    train, _, _ = make_layer('type: "BatchNorm" batch_norm_param { use_global_stats: true }',
                             [SHAPE])
    assert train.use_global_stats
    test, bottom, top = make_layer('type: "BatchNorm" batch_norm_param '
                                   '{ use_global_stats: false }', [SHAPE], seed=1,
                                   phase=caffe_pb2.TEST)
    assert not test.use_global_stats
    test.forward(bottom, top)
    assert test.blobs[2].data[0] == 1


def test_scale_factor_zero_means_zero_statistics():
    layer, bottom, top = make_layer('type: "BatchNorm" batch_norm_param { eps: 0.01 }',
                                    [SHAPE], seed=1, phase=caffe_pb2.TEST)
    layer.blobs[0].data[...] = 5
    layer.blobs[1].data[...] = 7
    layer.forward(bottom, top)
    eps = float(np.float32(0.01))
    np.testing.assert_allclose(top[0].data, bottom[0].data / np.sqrt(eps), rtol=1e-12)


@pytest.mark.parametrize('inplace', [False, True])
@pytest.mark.parametrize('shape', [(2, 3, 2, 2), (4, 2)])
def test_train_gradient(shape, inplace):
    layer, bottom, top = make_layer('type: "BatchNorm"', [shape], seed=2, inplace=inplace)
    GradientChecker(1e-2, 1e-4).check_exhaustive(layer, bottom, top)


def test_one_axis_bottom_is_one_channel():
    layer, bottom, top = make_layer('type: "BatchNorm"', [(5,)], seed=1)
    assert layer.channels == 1
    x = bottom[0].data.copy()
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, (x - x.mean()) / np.sqrt(x.var() + EPS),
                               rtol=1e-12)


def test_channel_count_is_fixed():
    layer, bottom, top = make_layer('type: "BatchNorm"', [SHAPE])
    bottom[0].reshape(2, 4, 2, 2)
    with pytest.raises(NetError, match='4 channels'):
        layer.reshape(bottom, top)


def test_float32():
    layer, bottom, top = make_layer('type: "BatchNorm"', [SHAPE], seed=1, dtype=np.float32)
    x = bottom[0].data.astype(np.float64)
    layer.forward(bottom, top)
    assert top[0].data.dtype == np.float32 and layer.blobs[0].data.dtype == np.float32
    mean, variance = batch_statistics(x)
    np.testing.assert_allclose(top[0].data, naive_batch_norm(x, mean, variance), rtol=1e-5,
                               atol=1e-6)


NET = '''
name: "bn_scale"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 2 dim: 5 dim: 5 } shape { dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 bias_term: false
                            weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv"
        scale_param { bias_term: true } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
'''


def test_train_net_with_batch_norm_and_scale():
    param = parse_text(NET, caffe_pb2.NetParameter(), '<bn_scale>')
    net = Net(param, caffe_pb2.TRAIN, dtype=np.float64)
    gen = np.random.default_rng(0)
    net.blobs['data'].data[...] = gen.standard_normal((4, 2, 5, 5))
    net.blobs['label'].data[...] = [0, 1, 2, 1]
    loss = float(net.forward()['loss'])
    assert np.isfinite(loss) and loss > 0
    bn = net.layer_dict['bn']
    assert bn.blobs[2].data[0] == 1
    bn_ids = net.param_id_vecs[net.layer_names.index('bn')]
    assert [net.params_lr[net.learnable_param_ids[i]] for i in bn_ids] == [0, 0, 0]
    assert not any(bn.param_propagate_down)
    net.clear_param_diffs()
    net.backward()
    for name in ('conv', 'scale', 'ip'):
        for blob in net.params[name]:
            assert np.isfinite(blob.diff).all() and np.abs(blob.diff).sum() > 0, name

    # The scale layer's gradients agree with a finite difference of the net's loss.
    scale = net.params['scale'][0]
    analytic = scale.diff[0]
    step = 1e-5
    scale.data[0] += step
    plus = float(net.forward()['loss'])
    scale.data[0] -= 2 * step
    minus = float(net.forward()['loss'])
    np.testing.assert_allclose(analytic, (plus - minus) / (2 * step), rtol=1e-4)


@pytest.mark.parametrize('params, phase', [('', caffe_pb2.TRAIN),
                                           ('batch_norm_param { use_global_stats: true }',
                                            caffe_pb2.TRAIN)])
def test_directional_gradient_at_a_realistic_size(params, phase):
    layer, bottom, top = make_layer('type: "BatchNorm" ' + params, [(8, 32, 7, 7)], seed=6,
                                    phase=phase)
    layer.param_propagate_down = [False] * 3   # the statistics are lr_mult 0, as in a net
    if layer.use_global_stats:
        stored = np.random.default_rng(7)
        layer.blobs[0].data[...] = stored.standard_normal(32)
        layer.blobs[1].data[...] = stored.uniform(0.5, 2.0, 32)
        layer.blobs[2].data[...] = 1.0
    GradientChecker(1e-3, 1e-4).check_directional(layer, bottom, top, directions=3)


def test_global_stats_gradient():
    layer, bottom, top = make_layer('type: "BatchNorm" batch_norm_param { use_global_stats: '
                                    'true }', [SHAPE], seed=8)
    stored_statistics(layer)
    layer.param_propagate_down = [False] * 3   # the statistics are lr_mult 0, as in a net
    GradientChecker(1e-2, 1e-4).check_exhaustive(layer, bottom, top)
