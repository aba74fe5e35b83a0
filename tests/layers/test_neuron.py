"""Tests of cct/layers/neuron.py: Sigmoid, TanH, AbsVal, BNLL, ELU, Threshold, Clip, Swish."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

SHAPE = (2, 3, 2, 3)


def sigmoid(x):
    with np.errstate(over='ignore'):
        return 1.0 / (1.0 + np.exp(-x))


def elu(alpha):
    return lambda x: np.where(x > 0, x, alpha * (np.exp(x) - 1))


def clip(low, high):
    return lambda x: np.minimum(np.maximum(x, low), high)


def away_from(values, points, margin=0.05):
    """``values`` with every element within ``margin`` of a kink moved 3·margin above it."""
    values = values.copy()
    for point in points:
        near = np.abs(values - point) < margin
        values[near] = point + 3 * margin
    return values


# (prototxt, naive forward, exact in-place, kinks to stay away from)
CASES = {
    'sigmoid': ('type: "Sigmoid"', sigmoid, True, ()),
    'tanh': ('type: "TanH"', np.tanh, True, ()),
    'absval': ('type: "AbsVal"', np.abs, False, (0.0,)),
    'bnll': ('type: "BNLL"', lambda x: np.log(1 + np.exp(x)), False, ()),
    'elu': ('type: "ELU"', elu(1.0), True, (0.0,)),
    'elu_alpha': ('type: "ELU" elu_param { alpha: 0.5 }', elu(0.5), True, (0.0,)),
    'clip': ('type: "Clip" clip_param { min: -1 max: 1.5 }', clip(-1, 1.5), False, (-1, 1.5)),
    # The layer sees the prototxt's float32 values, as Caffe does.
    'clip_narrow': ('type: "Clip" clip_param { min: 0.2 max: 0.4 }',
                    clip(np.float32(0.2), np.float32(0.4)), False, (0.2, 0.4)),
    'swish': ('type: "Swish"', lambda x: x * sigmoid(x), True, ()),
    'swish_beta': ('type: "Swish" swish_param { beta: 1.5 }', lambda x: x * sigmoid(1.5 * x),
                   True, ()),
}


def data(kinks, seed=3):
    return away_from(2 * np.random.default_rng(seed).standard_normal(SHAPE), kinks)


@pytest.mark.parametrize('case', sorted(CASES))
def test_forward_matches_naive_reference(case):
    text, reference, _, kinks = CASES[case]
    x = data(kinks)
    layer, bottom, top = make_layer(text, [SHAPE], bottom_data=[x])
    layer.forward(bottom, top)
    assert top[0].shape == SHAPE
    np.testing.assert_allclose(top[0].data, reference(x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize('case', sorted(CASES))
def test_float32_forward(case):
    text, reference, _, kinks = CASES[case]
    x = data(kinks)
    layer, bottom, top = make_layer(text, [SHAPE], bottom_data=[x], dtype=np.float32)
    layer.forward(bottom, top)
    assert top[0].data.dtype == np.float32
    np.testing.assert_allclose(top[0].data, reference(x.astype(np.float32)), rtol=2e-6,
                               atol=1e-6)


@pytest.mark.parametrize('case', sorted(CASES))
def test_gradient(case):
    text, _, _, kinks = CASES[case]
    layer, bottom, top = make_layer(text, [SHAPE], bottom_data=[data(kinks)])
    GradientChecker(1e-3, 1e-3).check_eltwise(layer, bottom, top)


@pytest.mark.parametrize('case', sorted(c for c in CASES if CASES[c][2]))
def test_gradient_in_place(case):
    text, reference, _, kinks = CASES[case]
    x = data(kinks)
    layer, bottom, top = make_layer(text, [SHAPE], bottom_data=[x], inplace=True)
    assert top[0] is bottom[0]
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x), rtol=1e-12, atol=1e-14)
    bottom[0].data[...] = x
    GradientChecker(1e-3, 1e-3).check_eltwise(layer, bottom, top)


def test_gradient_checker_skips_kinks_of_raw_data():
    """AbsVal and ELU on raw gaussian data, with Caffe's kink settings instead of moved data."""
    for text in ('type: "AbsVal"', 'type: "ELU" elu_param { alpha: 0.3 }'):
        layer, bottom, top = make_layer(text, [SHAPE], seed=11)
        GradientChecker(1e-2, 1e-3, kink=0.0, kink_range=0.01).check_eltwise(layer, bottom, top)


def test_gradient_at_exact_kinks():
    """Caffe's choices where the function is not differentiable."""
    absval, bottom, top = make_layer('type: "AbsVal"', [(3,)], bottom_data=[[-1.0, 0.0, 2.0]])
    absval.forward(bottom, top)
    top[0].diff[...] = 5
    absval.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [-5, 0, 5])

    clip_layer, bottom, top = make_layer('type: "Clip" clip_param { min: -1 max: 1 }', [(5,)],
                                         bottom_data=[[-1.5, -1.0, 0.0, 1.0, 1.5]])
    clip_layer.forward(bottom, top)
    top[0].diff[...] = 1
    clip_layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [0, 1, 1, 1, 0])

    elu_layer, bottom, top = make_layer('type: "ELU" elu_param { alpha: 0.5 }', [(2,)],
                                        bottom_data=[[0.0, 1e-9]])
    elu_layer.forward(bottom, top)
    top[0].diff[...] = 1
    elu_layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, [0.5, 1.0])


def test_absval_refuses_in_place():
    with pytest.raises(NetError, match='does not allow in-place'):
        make_layer('type: "AbsVal"', [SHAPE], inplace=True)


def test_bnll_is_stable_for_large_inputs():
    x = np.array([-1000.0, -60.0, 0.0, 60.0, 1000.0])
    for dtype in (np.float32, np.float64):
        layer, bottom, top = make_layer('type: "BNLL"', [x.shape], bottom_data=[x], dtype=dtype)
        with np.errstate(over='raise', invalid='raise', divide='raise'):
            layer.forward(bottom, top)
            top[0].diff[...] = 1
            layer.backward(top, [True], bottom)
        np.testing.assert_allclose(top[0].data, [0.0, np.exp(-60.0), np.log(2), 60.0, 1000.0],
                                   rtol=1e-6, atol=1e-30)
        # The backward evaluates e^min(x, 50): the slope is sigmoid(min(x, 50)).
        np.testing.assert_allclose(bottom[0].diff, sigmoid(np.minimum(x, 50)), rtol=1e-6)


def test_threshold_forward_is_strict():
    x = np.array([-1.0, 0.5, 0.5 + 1e-7, 2.0])
    layer, bottom, top = make_layer('type: "Threshold" threshold_param { threshold: 0.5 }',
                                    [x.shape], bottom_data=[x])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, [0, 0, 1, 1])
    default, bottom, top = make_layer('type: "Threshold"', [(3,)], bottom_data=[[-1, 0, 1e-30]])
    default.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, [0, 0, 1])


def test_threshold_has_no_backward():
    layer, bottom, top = make_layer('type: "Threshold"', [SHAPE])
    layer.forward(bottom, top)
    layer.backward(top, [False], bottom)
    with pytest.raises(NotImplementedError, match="layer 'threshold' .*Threshold"):
        layer.backward(top, [True], bottom)


def test_clip_requires_min_and_max():
    for text in ('clip_param { min: -1 }', 'clip_param { max: 1 }', ''):
        with pytest.raises(NetError, match='required'):
            make_layer('type: "Clip" ' + text, [SHAPE])


def test_clip_with_min_above_max_gives_min():
    layer, bottom, top = make_layer('type: "Clip" clip_param { min: 2 max: 1 }', [(3,)],
                                    bottom_data=[[0.0, 1.5, 3.0]])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, [2, 2, 2])


def test_clip_in_place_reads_the_clipped_output_as_caffe_does():
    """Caffe allows in-place Clip; its backward then sees the output, inside [min, max]."""
    layer, bottom, top = make_layer('type: "Clip" clip_param { min: -1 max: 1 }', [(3,)],
                                    bottom_data=[[-3.0, 0.0, 3.0]], inplace=True)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [1, 1, 1])


def test_sigmoid_saturates_without_overflow():
    x = np.array([-1000.0, 0.0, 1000.0], np.float32)
    layer, bottom, top = make_layer('type: "Sigmoid"', [x.shape], bottom_data=[x],
                                    dtype=np.float32)
    with np.errstate(over='raise', invalid='raise', divide='raise'):
        layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, [0.0, 0.5, 1.0])


def test_propagate_down_false_leaves_bottom_diff():
    for case in sorted(CASES):
        text, _, _, kinks = CASES[case]
        layer, bottom, top = make_layer(text, [SHAPE], bottom_data=[data(kinks)])
        layer.forward(bottom, top)
        bottom[0].diff[...] = 7
        top[0].diff[...] = 1
        layer.backward(top, [False], bottom)
        assert (bottom[0].diff == 7).all(), case
