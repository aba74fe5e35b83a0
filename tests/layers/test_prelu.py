"""Tests of cct/layers/prelu.py."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

SHAPE = (2, 3, 2, 2)


def naive_prelu(x, slopes):
    """Element by element, channel c = axis 1, as Caffe's loop indexes it."""
    y = np.empty_like(x)
    flat_x, flat_y = x.reshape(x.shape[0], x.shape[1], -1), y.reshape(x.shape[0], x.shape[1], -1)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            a = slopes if np.ndim(slopes) == 0 else slopes[c]
            for i in range(flat_x.shape[2]):
                v = flat_x[n, c, i]
                flat_y[n, c, i] = max(v, 0) + a * min(v, 0)
    return y


def random_slopes(layer, seed=2):
    layer.blobs[0].data[...] = np.random.default_rng(seed).uniform(0.1, 0.9,
                                                                   layer.blobs[0].shape)


def test_setup_default_filler_and_shapes():
    layer, _, top = make_layer('type: "PReLU"', [SHAPE])
    assert top[0].shape == SHAPE
    assert len(layer.blobs) == 1 and layer.blobs[0].shape == (3,)
    np.testing.assert_array_equal(layer.blobs[0].data, 0.25)
    shared, _, _ = make_layer('type: "PReLU" prelu_param { channel_shared: true }', [SHAPE])
    assert shared.blobs[0].shape == () and shared.blobs[0].count == 1
    assert shared.blobs[0].data == np.float64(0.25)
    filled, _, _ = make_layer('type: "PReLU" prelu_param { filler { type: "constant" '
                              'value: 0.1 } }', [SHAPE])
    np.testing.assert_allclose(filled.blobs[0].data, np.float32(0.1))


def test_needs_two_axes():
    with pytest.raises(NetError, match='>=2'):
        make_layer('type: "PReLU"', [(6,)])


@pytest.mark.parametrize('shared', [False, True])
@pytest.mark.parametrize('shape', [SHAPE, (3, 4), (2, 2, 3, 1, 2)])
def test_forward_matches_naive(shared, shape):
    layer, bottom, top = make_layer('type: "PReLU" prelu_param { channel_shared: %s }'
                                    % str(shared).lower(), [shape], seed=4)
    random_slopes(layer)
    layer.forward(bottom, top)
    slopes = layer.blobs[0].data[()] if shared else layer.blobs[0].data
    np.testing.assert_allclose(top[0].data, naive_prelu(bottom[0].data, slopes), rtol=1e-14)


@pytest.mark.parametrize('shared', [False, True])
@pytest.mark.parametrize('inplace', [False, True])
def test_gradient(shared, inplace):
    layer, bottom, top = make_layer('type: "PReLU" prelu_param { channel_shared: %s }'
                                    % str(shared).lower(), [SHAPE], seed=6, inplace=inplace)
    random_slopes(layer)
    GradientChecker(1e-2, 1e-3, kink=0.0, kink_range=0.01).check(layer, bottom, top)


def test_gradient_at_zero_uses_the_slope():
    layer, bottom, top = make_layer('type: "PReLU"', [(1, 2)], bottom_data=[[[0.0, 2.0]]])
    layer.blobs[0].data[...] = [0.5, 0.5]
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [[0.5, 1.0]])


def test_slope_gradient_accumulates():
    layer, bottom, top = make_layer('type: "PReLU"', [SHAPE], seed=7)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.blobs[0].diff[...] = 0
    layer.backward(top, [True], bottom)
    once = layer.blobs[0].diff.copy()
    expected = np.minimum(bottom[0].data, 0).sum(axis=(0, 2, 3))
    np.testing.assert_allclose(once, expected, rtol=1e-14)
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once, rtol=1e-14)


def test_in_place_backward_sees_the_bottom_of_the_forward():
    x = np.array([[[-2.0], [3.0]]])
    layer, bottom, top = make_layer('type: "PReLU"', [x.shape], bottom_data=[x], inplace=True)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, [[[-0.5], [3.0]]])
    top[0].diff[...] = 1
    layer.blobs[0].diff[...] = 0
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, [[[0.25], [1.0]]])
    np.testing.assert_allclose(layer.blobs[0].diff, [-2.0, 0.0])


def test_float32():
    layer, bottom, top = make_layer('type: "PReLU"', [SHAPE], seed=4, dtype=np.float32)
    layer.forward(bottom, top)
    assert top[0].data.dtype == np.float32 and layer.blobs[0].data.dtype == np.float32
    np.testing.assert_allclose(top[0].data, naive_prelu(bottom[0].data, layer.blobs[0].data),
                               rtol=1e-6)
