"""Softmax (cct/layers/softmax.py): along ``axis`` with every other axis independent, max-subtracted
(no overflow), gradients, in place (Caffe's test_softmax_layer)."""
import numpy as np
import pytest

from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker


def softmax_reference(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize('params, axis', [('', 1), ('axis: 2', 2), ('axis: -1', 3),
                                          ('axis: 0', 0)])
def test_forward_and_gradient(params, axis):
    layer, bottom, top = make_layer('type: "Softmax" softmax_param { %s }' % params,
                                    [(2, 3, 2, 3)], seed=4)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, softmax_reference(bottom[0].data, axis), rtol=1e-12)
    np.testing.assert_allclose(top[0].data.sum(axis=axis), 1.0, rtol=1e-12)
    GradientChecker(1e-2, 1e-3).check(layer, bottom, top)


def test_in_place_gradient():
    layer, bottom, top = make_layer('type: "Softmax"', [(2, 4)], seed=6, inplace=True)
    GradientChecker(1e-2, 1e-3).check(layer, bottom, top)


def test_large_inputs_do_not_overflow():
    x = np.array([[1000.0, 1001.0, 999.0]], dtype=np.float32)
    layer, bottom, top = make_layer('type: "Softmax"', [x.shape], bottom_data=[x],
                                    dtype=np.float32)
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, softmax_reference(x.astype(np.float64), 1), rtol=1e-6)


def test_infinite_inputs_give_nan_without_a_numpy_warning(recwarn):
    """A diverged net's inf reaches Softmax: NaN out, as in Caffe (the solver's loss check then
    names the layer), and no RuntimeWarning from numpy on the way."""
    x = np.array([[np.inf, 1.0, 0.0], [0.0, 1.0, 2.0]], dtype=np.float32)
    layer, bottom, top = make_layer('type: "Softmax"', [x.shape], bottom_data=[x],
                                    dtype=np.float32)
    layer.forward(bottom, top)
    assert np.isnan(top[0].data[0]).all()
    np.testing.assert_allclose(top[0].data[1], softmax_reference(x[1:].astype(np.float64), 1)[0],
                               rtol=1e-6)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
