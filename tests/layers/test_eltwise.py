"""Eltwise (cct/layers/eltwise.py): SUM with coefficients, PROD (stable and quotient gradients), MAX
with Caffe's tie rule, against naive references, and gradient checks (Caffe's test_eltwise_layer)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

SHAPES = [(2, 3, 4, 5)] * 3


def eltwise(params, shapes=SHAPES, **kwargs):
    return make_layer('type: "Eltwise" eltwise_param { %s }' % params, shapes, seed=1701,
                      **kwargs)


def test_setup_shape():
    layer, bottom, top = eltwise('operation: PROD')
    assert top[0].shape == (2, 3, 4, 5)


@pytest.mark.parametrize('coeffs', [None, (1.0, -0.5, 2.0)])
def test_sum_forward_and_gradient(coeffs):
    text = 'operation: SUM' + ''.join(' coeff: %g' % c for c in coeffs or ())
    layer, bottom, top = eltwise(text)
    layer.forward(bottom, top)
    weights = coeffs or (1.0, 1.0, 1.0)
    expected = sum(w * b.data for w, b in zip(weights, bottom))
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-12)
    GradientChecker(1e-2, 1e-3).check_eltwise(layer, bottom, top)


@pytest.mark.parametrize('stable', ['true', 'false'])
def test_prod_forward_and_gradient(stable):
    layer, bottom, top = eltwise('operation: PROD stable_prod_grad: %s' % stable)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, bottom[0].data * bottom[1].data * bottom[2].data,
                               rtol=1e-12)
    GradientChecker(1e-2, 1e-3).check_eltwise(layer, bottom, top)


def test_prod_stable_gradient_survives_zeros():
    data = [np.ones((2, 3)), np.full((2, 3), 2.0), np.full((2, 3), 3.0)]
    data[0][0, 0] = 0.0
    layer, bottom, top = eltwise('operation: PROD', [(2, 3)] * 3, bottom_data=data)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [True] * 3, bottom)
    np.testing.assert_allclose(bottom[0].diff, np.full((2, 3), 6.0))
    assert bottom[1].diff[0, 0] == 0 and bottom[2].diff[0, 0] == 0


def test_max_forward_gradient_and_ties():
    layer, bottom, top = eltwise('operation: MAX')
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, np.maximum.reduce([b.data for b in bottom]))
    GradientChecker(1e-4, 1e-2).check_eltwise(layer, bottom, top)

    # Ties: bottom 1 beats bottom 0 (Caffe's a > b test), a later bottom needs to be strictly greater.
    data = [np.array([1.0, 2.0, 5.0]), np.array([1.0, 0.0, 5.0]), np.array([0.0, 2.0, 5.0])]
    layer, bottom, top = eltwise('operation: MAX', [(3,)] * 3, bottom_data=data)
    layer.forward(bottom, top)
    top[0].diff[...] = [10.0, 20.0, 30.0]
    layer.backward(top, [True] * 3, bottom)
    np.testing.assert_array_equal(bottom[0].diff, [0, 20, 0])
    np.testing.assert_array_equal(bottom[1].diff, [10, 0, 30])
    np.testing.assert_array_equal(bottom[2].diff, [0, 0, 0])


def test_errors():
    with pytest.raises(NetError, match='one coefficient per bottom'):
        eltwise('operation: SUM coeff: 1 coeff: 2')
    with pytest.raises(NetError, match='only takes coefficients for summation'):
        eltwise('operation: PROD coeff: 1 coeff: 2 coeff: 3')
    with pytest.raises(NetError, match='all bottoms must match'):
        eltwise('operation: SUM', [(2, 3), (3, 2)])


@pytest.mark.parametrize('operation', ['SUM coeff: 2 coeff: -1 coeff: 3', 'PROD', 'MAX'])
def test_in_place_on_bottom_0(operation):
    layer, bottom, top = eltwise('operation: %s' % operation)
    layer.forward(bottom, top)
    expected = top[0].data.copy()
    inputs = [blob.data.copy() for blob in bottom]
    layer.forward(bottom, [bottom[0]])
    np.testing.assert_array_equal(bottom[0].data, expected)
    if operation.startswith('SUM'):
        bottom[0].diff[...] = 1
        layer.backward([bottom[0]], [True] * 3, bottom)
        np.testing.assert_array_equal([b.diff[0, 0, 0, 0] for b in bottom], [2, -1, 3])
    assert inputs[1].tolist() == bottom[1].data.tolist()
