"""Reduction (cct/layers/reduction.py): SUM, ASUM, SUMSQ and MEAN over the tail axes with coeff,
against numpy, with gradient checks over several axes and coefficients (Caffe's
test_reduction_layer)."""
import numpy as np
import pytest

from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

SHAPE = (2, 3, 4, 5)
REFERENCE = {
    'SUM': lambda x: x.sum(axis=1),
    'ASUM': lambda x: np.abs(x).sum(axis=1),
    'SUMSQ': lambda x: (x * x).sum(axis=1),
    'MEAN': lambda x: x.mean(axis=1),
}


def reduction(op, axis=None, coeff=None):
    params = 'operation: %s' % op
    params += '' if axis is None else ' axis: %d' % axis
    params += '' if coeff is None else ' coeff: %g' % coeff
    return make_layer('type: "Reduction" reduction_param { %s }' % params, [SHAPE], seed=11)


@pytest.mark.parametrize('op', sorted(REFERENCE))
@pytest.mark.parametrize('axis, coeff', [(None, None), (1, 2.5), (-1, -0.5), (3, None)])
def test_forward_and_gradient(op, axis, coeff):
    layer, bottom, top = reduction(op, axis, coeff)
    axis_index = 0 if axis is None else axis % 4
    assert top[0].shape == SHAPE[:axis_index]
    layer.forward(bottom, top)
    x = bottom[0].data.reshape(int(np.prod(SHAPE[:axis_index])), -1)
    expected = REFERENCE[op](x) * (1.0 if coeff is None else coeff)
    np.testing.assert_allclose(top[0].data.reshape(-1), expected, rtol=1e-12)
    # ASUM has a kink at 0; the random inputs stay clear of it.
    GradientChecker(1e-2, 1e-3, kink_range=1e-2 if op == 'ASUM' else -1).check(
        layer, bottom, top)


def test_asum_gradient_at_zero_is_zero():
    data = [np.zeros(SHAPE)]
    layer, bottom, top = make_layer('type: "Reduction" reduction_param { operation: ASUM }',
                                    [SHAPE], bottom_data=data)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    assert not bottom[0].diff.any()
