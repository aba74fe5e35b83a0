"""LRN (cct/layers/lrn.py): Caffe's ACROSS_CHANNELS and WITHIN_CHANNEL formulas against naive
references (alpha over local_size; the within-channel mean over local_size**2 cells counting zero
padding, k ignored), float32 and float64, gradients, and the errors (Caffe's test_lrn_layer)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

SHAPE = (2, 7, 3, 3)  # Caffe's test blob


def f32(value):
    """A value as the prototxt stores it (LRNParameter's fields are floats)."""
    return float(np.float32(value))


def across_reference(x, size, alpha, beta, k):
    """Caffe's ReferenceLRNForward, written loop by loop over channels."""
    alpha, beta, k = f32(alpha), f32(beta), f32(k)
    y = np.empty_like(x)
    channels = x.shape[1]
    for c in range(channels):
        start = max(c - (size - 1) // 2, 0)
        stop = min(c - (size - 1) // 2 + size, channels)
        scale = k + (alpha / size) * (x[:, start:stop] ** 2).sum(axis=1)
        y[:, c] = x[:, c] * scale ** -beta
    return y


def within_reference(x, size, alpha, beta):
    """Caffe's Split/Power/AVE-Pooling/Power/Eltwise chain: (1 + alpha * mean(x^2))^-beta, the mean
    over the size x size window of the zero-padded plane (always size**2 cells)."""
    alpha, beta = f32(alpha), f32(beta)
    pad = (size - 1) // 2
    padded = np.pad(x ** 2, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    height, width = x.shape[2:]
    sums = np.zeros_like(x)
    for dh in range(size):
        for dw in range(size):
            sums += padded[:, :, dh:dh + height, dw:dw + width]
    return x * (1 + alpha * sums / size ** 2) ** -beta


def lrn(params, shape=SHAPE, dtype=np.float64, seed=3):
    return make_layer('type: "LRN" lrn_param { %s }' % params, [shape], dtype=dtype, seed=seed)


def test_setup_shapes():
    for region in ('ACROSS_CHANNELS', 'WITHIN_CHANNEL'):
        _, _, top = lrn('norm_region: %s' % region)
        assert top[0].shape == SHAPE


@pytest.mark.parametrize('params, size, alpha, beta, k', [
    ('', 5, 1.0, 0.75, 1.0),                                        # the defaults
    ('local_size: 15', 15, 1.0, 0.75, 1.0),                         # Caffe's LargeRegion case
    ('local_size: 3 alpha: 0.0001 beta: 0.75 k: 2', 3, 1e-4, 0.75, 2.0),  # AlexNet-style
    ('local_size: 1 alpha: 0.5 beta: 1.5 k: 0.5', 1, 0.5, 1.5, 0.5),
])
def test_across_channels_forward(params, size, alpha, beta, k):
    layer, bottom, top = lrn(params)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, across_reference(bottom[0].data, size, alpha, beta, k),
                               rtol=1e-12, atol=1e-14)


def test_across_channels_many_pixels_and_float32():
    """Pixel blocks of the kernel (H*W > 256) and the float32 path."""
    shape = (3, 11, 17, 19)
    layer, bottom, top = lrn('local_size: 5 alpha: 0.0001 beta: 0.75', shape, np.float32)
    layer.forward(bottom, top)
    expected = across_reference(bottom[0].data.astype(np.float64), 5, 1e-4, 0.75, 1.0)
    np.testing.assert_allclose(top[0].data, expected, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize('size, alpha, beta', [(3, 1.0, 0.75), (5, 2.0, 0.5), (1, 0.3, 1.0)])
def test_within_channel_forward(size, alpha, beta):
    layer, bottom, top = lrn('norm_region: WITHIN_CHANNEL local_size: %d alpha: %g beta: %g'
                             % (size, alpha, beta), (2, 3, 6, 5))
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, within_reference(bottom[0].data, size, alpha, beta),
                               rtol=1e-12)


def test_within_channel_ignores_k_and_divides_by_the_full_window():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 0, 0] = 2.0  # a corner: its 3x3 window holds 4 real cells and 5 padding cells
    layer, bottom, top = make_layer('type: "LRN" lrn_param { norm_region: WITHIN_CHANNEL '
                                    'local_size: 3 alpha: 0.9 beta: 1 k: 7 }', [x.shape],
                                    bottom_data=[x])
    layer.forward(bottom, top)
    assert top[0].data[0, 0, 0, 0] == pytest.approx(2.0 / (1 + 0.9 * 4.0 / 9))


def test_across_channels_alpha_is_divided_by_local_size():
    x = np.zeros((1, 3, 1, 1))
    x[0, 1] = 2.0
    layer, bottom, top = make_layer('type: "LRN" lrn_param { local_size: 3 alpha: 0.6 beta: 1 '
                                    'k: 2 }', [x.shape], bottom_data=[x])
    layer.forward(bottom, top)
    assert top[0].data[0, 1, 0, 0] == pytest.approx(2.0 / (2 + 0.6 / 3 * 4.0))


@pytest.mark.parametrize('params', [
    'local_size: 3 alpha: 1 beta: 0.75',
    'local_size: 5 alpha: 2 beta: 0.5 k: 1.5',
    'local_size: 9 alpha: 1 beta: 0.75',          # window wider than the 7 channels
    'norm_region: WITHIN_CHANNEL local_size: 3 alpha: 1 beta: 0.75',
    'norm_region: WITHIN_CHANNEL local_size: 5 alpha: 3 beta: 1.25',
])
def test_gradient(params):
    layer, bottom, top = lrn(params)
    GradientChecker(1e-2, 1e-2).check(layer, bottom, top)


@pytest.mark.parametrize('region', ['ACROSS_CHANNELS', 'WITHIN_CHANNEL'])
def test_gradient_exhaustive(region):
    """Every top element as the objective (Caffe's CheckGradientExhaustive), on a small blob."""
    layer, bottom, top = lrn('norm_region: %s local_size: 3 alpha: 1.5' % region, (1, 4, 3, 2))
    GradientChecker(1e-2, 1e-2).check_exhaustive(layer, bottom, top)


def test_gradient_float32_matches_float64():
    shape = (2, 6, 5, 4)
    layer64, bottom64, top64 = lrn('local_size: 5 alpha: 0.5', shape, np.float64, seed=9)
    layer32, bottom32, top32 = lrn('local_size: 5 alpha: 0.5', shape, np.float32, seed=9)
    for layer, bottom, top in ((layer64, bottom64, top64), (layer32, bottom32, top32)):
        layer.forward(bottom, top)
        top[0].diff[...] = np.linspace(-1, 1, top[0].count).reshape(shape)
        layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom32[0].diff, bottom64[0].diff, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('text, shape, message', [
    ('lrn_param { local_size: 4 }', SHAPE, 'odd values for local_size'),
    ('', (2, 7, 3), 'must have 4 axes'),
])
def test_errors(text, shape, message):
    with pytest.raises(NetError, match=message):
        make_layer('type: "LRN" ' + text, [shape])


def test_refuses_in_place():
    with pytest.raises(NetError, match='in-place'):
        from cct.net import Net
        from cct.io import parse_text
        from cct.proto import caffe_pb2
        Net(parse_text('layer { name: "in" type: "Input" top: "x" '
                       'input_param { shape { dim: 1 dim: 3 dim: 2 dim: 2 } } } '
                       'layer { name: "norm" type: "LRN" bottom: "x" top: "x" }',
                       caffe_pb2.NetParameter()))


@pytest.mark.parametrize('params', ['local_size: 5 alpha: 1 beta: 0.75',
                                    'norm_region: WITHIN_CHANNEL local_size: 5 alpha: 2 beta: 0.75'])
def test_directional_gradient_at_a_realistic_size(params):
    """CaffeNet norm1-sized planes (alpha raised so the normalisation is far from the identity)."""
    layer, bottom, top = lrn(params, (2, 48, 13, 13), seed=5)
    GradientChecker(1e-3, 1e-4).check_directional(layer, bottom, top, directions=3)
