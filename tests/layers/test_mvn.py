"""Tests of cct/layers/mvn.py."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

SHAPE = (2, 3, 2, 2)


def naive_mvn(x, normalize_variance, across_channels, eps):
    groups = x.reshape(x.shape[0] if across_channels else x.shape[0] * x.shape[1], -1)
    out = np.empty_like(groups)
    for g, values in enumerate(groups):
        centred = values - values.mean()
        if normalize_variance:
            # eps goes on the standard deviation, not the variance.
            centred = centred / (np.sqrt((centred ** 2).mean()) + eps)
        out[g] = centred
    return out.reshape(x.shape)


def caffe_backward(y, dy, normalize_variance, across_channels, eps, x):
    """Caffe's MVN backward, group by group, with its (sqrt(var) + eps) denominators."""
    groups = (y.shape[0] if across_channels else y.shape[0] * y.shape[1])
    y, dy, x = (a.reshape(groups, -1) for a in (y, dy, x))
    dx = np.empty_like(dy)
    for g in range(groups):
        if not normalize_variance:
            dx[g] = dy[g] - dy[g].mean()
            continue
        std = np.sqrt(((x[g] - x[g].mean()) ** 2).mean()) + eps
        dx[g] = (dy[g] - dy[g].mean() - y[g] * (dy[g] * y[g]).mean()) / std
    return dx


SETTINGS = [(True, False), (True, True), (False, False), (False, True)]


def text(normalize_variance, across_channels, eps=None):
    return ('type: "MVN" mvn_param { normalize_variance: %s across_channels: %s %s }'
            % (str(normalize_variance).lower(), str(across_channels).lower(),
               '' if eps is None else 'eps: %r' % eps))


@pytest.mark.parametrize('normalize_variance, across_channels', SETTINGS)
def test_forward(normalize_variance, across_channels):
    layer, bottom, top = make_layer(text(normalize_variance, across_channels), [SHAPE], seed=1)
    layer.forward(bottom, top)
    assert top[0].shape == SHAPE
    eps = float(np.float32(1e-9))
    np.testing.assert_allclose(
        top[0].data, naive_mvn(bottom[0].data, normalize_variance, across_channels, eps),
        rtol=1e-12, atol=1e-14)


def test_eps_is_added_to_the_standard_deviation():
    x = np.array([[[[1.0, 3.0]]]])  # mean 2, variance 1
    layer, bottom, top = make_layer(text(True, False, 0.5), [x.shape], bottom_data=[x])
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data.ravel(), [-1 / 1.5, 1 / 1.5])


@pytest.mark.parametrize('normalize_variance, across_channels', SETTINGS)
@pytest.mark.parametrize('inplace', [False, True])
def test_gradient(normalize_variance, across_channels, inplace):
    layer, bottom, top = make_layer(text(normalize_variance, across_channels), [SHAPE], seed=2,
                                    inplace=inplace)
    GradientChecker(1e-2, 1e-3).check_exhaustive(layer, bottom, top)


@pytest.mark.parametrize('normalize_variance, across_channels', SETTINGS)
def test_backward_is_caffes_formula_for_large_eps(normalize_variance, across_channels):
    layer, bottom, top = make_layer(text(normalize_variance, across_channels, 0.25), [SHAPE],
                                    seed=3)
    layer.forward(bottom, top)
    top[0].diff[...] = np.random.default_rng(4).standard_normal(SHAPE)
    layer.backward(top, [True], bottom)
    expected = caffe_backward(top[0].data, top[0].diff, normalize_variance, across_channels,
                              0.25, bottom[0].data)
    np.testing.assert_allclose(bottom[0].diff, expected.reshape(SHAPE), rtol=1e-12, atol=1e-14)


def test_top_is_four_dimensional_like_caffes_legacy_reshape():
    layer, bottom, top = make_layer('type: "MVN"', [(3, 4)], seed=5)
    assert top[0].shape == (3, 4, 1, 1)
    layer.forward(bottom, top)
    # Each (image, channel) group has one value: it centres to 0.
    np.testing.assert_array_equal(top[0].data, 0)
    across, bottom, top = make_layer('type: "MVN" mvn_param { across_channels: true }',
                                     [(3, 4)], seed=5)
    across.forward(bottom, top)
    np.testing.assert_allclose(top[0].data.reshape(3, 4),
                               naive_mvn(bottom[0].data, True, True, float(np.float32(1e-9))),
                               rtol=1e-12)


def test_more_than_four_axes_is_refused():
    with pytest.raises(NetError, match='> 4 axes'):
        make_layer('type: "MVN"', [(2, 2, 2, 2, 2)])


def test_float32():
    layer, bottom, top = make_layer('type: "MVN"', [SHAPE], seed=1, dtype=np.float32)
    layer.forward(bottom, top)
    assert top[0].data.dtype == np.float32
    np.testing.assert_allclose(top[0].data,
                               naive_mvn(bottom[0].data.astype(np.float64), True, False, 1e-9),
                               rtol=1e-5, atol=1e-5)
