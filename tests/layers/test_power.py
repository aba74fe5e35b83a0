"""Tests of cct/layers/power.py: Power, Exp and Log."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

SHAPE = (2, 3, 2, 3)


def gaussian(seed=5):
    return np.random.default_rng(seed).standard_normal(SHAPE)


def positive(seed=5):
    return np.random.default_rng(seed).uniform(0.5, 2.0, SHAPE)


def away_from_zero(seed=5):
    x = gaussian(seed)
    return np.where(np.abs(x) < 0.2, np.sign(x) * 0.2 + x, x)


# (power, scale, shift, input); inputs keep shift + scale·x where the power is defined.
POWER_CASES = {
    'identity': (1.0, 1.0, 0.0, gaussian),
    'power_1_affine': (1.0, 2.0, 0.5, gaussian),
    'power_2': (2.0, 1.0, 0.0, gaussian),
    'power_2_affine': (2.0, 0.5, -1.0, gaussian),
    'power_half': (0.5, 1.0, 0.0, positive),
    'power_half_affine': (0.5, 2.0, 3.0, positive),
    'power_3_affine': (3.0, 0.7, 0.2, gaussian),
    'power_minus_1': (-1.0, 1.0, 0.0, away_from_zero),
    'power_minus_half_affine': (-0.5, 0.5, 2.0, positive),
}


def power_text(power, scale, shift):
    return 'type: "Power" power_param { power: %r scale: %r shift: %r }' % (power, scale, shift)


@pytest.mark.parametrize('case', sorted(POWER_CASES))
def test_power_forward(case):
    power, scale, shift, make = POWER_CASES[case]
    x = make()
    layer, bottom, top = make_layer(power_text(power, scale, shift), [SHAPE], bottom_data=[x])
    layer.forward(bottom, top)
    # The layer sees the prototxt's float32 values, as Caffe does.
    power, scale, shift = (float(np.float32(v)) for v in (power, scale, shift))
    np.testing.assert_allclose(top[0].data, (shift + scale * x) ** power, rtol=1e-12)


@pytest.mark.parametrize('case', sorted(POWER_CASES))
def test_power_gradient(case):
    power, scale, shift, make = POWER_CASES[case]
    layer, bottom, top = make_layer(power_text(power, scale, shift), [SHAPE],
                                    bottom_data=[make()])
    GradientChecker(1e-3, 1e-2).check_eltwise(layer, bottom, top)


@pytest.mark.parametrize('power, expected', [(0.0, 1.0), (2.0, 9.0), (0.5, np.sqrt(3.0))])
def test_power_ignores_input_when_power_times_scale_is_zero(power, expected):
    scale = 0.0 if power else 1.0
    layer, bottom, top = make_layer(power_text(power, scale, 3.0), [SHAPE])
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-7)
    top[0].diff[...] = 1
    bottom[0].diff[...] = 5
    layer.backward(top, [True], bottom)
    assert (bottom[0].diff == 0).all()
    GradientChecker(1e-3, 1e-2).check_eltwise(layer, bottom, top)


def test_power_half_at_zero_follows_caffe():
    """shift 0 computes power·y/x, which is 0/0 at x = 0; the forward is still sqrt(0) = 0."""
    layer, bottom, top = make_layer(power_text(0.5, 1.0, 0.0), [(2,)], bottom_data=[[0.0, 4.0]])
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, [0.0, 2.0])
    top[0].diff[...] = 1
    with np.errstate(invalid='ignore'):
        layer.backward(top, [True], bottom)
    assert np.isnan(bottom[0].diff[0]) and bottom[0].diff[1] == 0.25


def test_power_float32():
    x = gaussian()
    layer, bottom, top = make_layer(power_text(2.0, 0.5, -1.0), [SHAPE], bottom_data=[x],
                                    dtype=np.float32)
    layer.forward(bottom, top)
    assert top[0].data.dtype == np.float32
    np.testing.assert_allclose(top[0].data, (0.5 * x - 1) ** 2, rtol=1e-5)


def test_power_in_place_power_1_keeps_caffes_overwrite():
    """Caffe writes the constant slope over the (shared) top diff before multiplying by it."""
    layer, bottom, top = make_layer(power_text(1.0, 3.0, 0.5), [(3,)], inplace=True)
    layer.forward(bottom, top)
    top[0].diff[...] = [1.0, 2.0, 4.0]
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [9.0, 9.0, 9.0])


# (exp_param, naive forward)
EXP_CASES = {
    'default': ('', np.exp),
    'base_2': ('base: 2 scale: 0.5 shift: 1', lambda x: 2.0 ** (1 + 0.5 * x)),
    'e_shifted': ('scale: 2 shift: -1', lambda x: np.exp(2 * x - 1)),
    'base_0.5': ('base: 0.5 scale: -1.5', lambda x: 0.5 ** (-1.5 * x)),
}


@pytest.mark.parametrize('case', sorted(EXP_CASES))
def test_exp(case):
    text, reference = EXP_CASES[case]
    x = gaussian()
    layer, bottom, top = make_layer('type: "Exp" exp_param { %s }' % text, [SHAPE],
                                    bottom_data=[x])
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x), rtol=1e-12)
    GradientChecker(1e-3, 1e-3).check_eltwise(layer, bottom, top)
    in_place, bottom, top = make_layer('type: "Exp" exp_param { %s }' % text, [SHAPE],
                                       bottom_data=[x], inplace=True)
    GradientChecker(1e-3, 1e-3).check_eltwise(in_place, bottom, top)


# (log_param, input, naive forward)
LOG_CASES = {
    'default': ('', positive, np.log),
    'base_2': ('base: 2', positive, np.log2),
    'base_10_affine': ('base: 10 scale: 0.5 shift: 3', gaussian,
                       lambda x: np.log10(3 + 0.5 * x)),
    'e_scaled': ('scale: -2 shift: 5', gaussian, lambda x: np.log(5 - 2 * x)),
}


@pytest.mark.parametrize('case', sorted(LOG_CASES))
def test_log(case):
    text, make, reference = LOG_CASES[case]
    x = make()
    layer, bottom, top = make_layer('type: "Log" log_param { %s }' % text, [SHAPE],
                                    bottom_data=[x])
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, reference(x), rtol=1e-12)
    GradientChecker(1e-3, 1e-3).check_eltwise(layer, bottom, top)


def test_exp_and_log_float32():
    x = positive()
    cases = (('type: "Exp" exp_param { base: 2 shift: 1 }', lambda v: 2 ** (v + 1)),
             ('type: "Log" log_param { base: 2 shift: 1 }', lambda v: np.log2(v + 1)))
    for text, reference in cases:
        layer, bottom, top = make_layer(text, [SHAPE], bottom_data=[x], dtype=np.float32)
        layer.forward(bottom, top)
        assert top[0].data.dtype == np.float32
        np.testing.assert_allclose(top[0].data, reference(x), rtol=1e-5)


@pytest.mark.parametrize('text, message', [
    ('type: "Exp" exp_param { base: 0 }', 'strictly positive'),
    ('type: "Exp" exp_param { base: -2 }', 'strictly positive'),
    ('type: "Log" log_param { base: -0.5 }', 'strictly positive'),
    ('type: "Log" log_param { base: 1 }', 'Inf result'),
])
def test_invalid_bases(text, message):
    with pytest.raises(NetError, match=message):
        make_layer(text, [SHAPE])
