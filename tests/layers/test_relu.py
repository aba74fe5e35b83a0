"""ReLU (cct/layers/relu.py): max(x, 0) + negative_slope * min(x, 0), the gradient at exactly 0 is
the negative slope's (Caffe tests x > 0), in place and float32 (Caffe's test_neuron_layer ReLU
cases)."""
import numpy as np
import pytest

from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker


@pytest.mark.parametrize('slope, inplace', [(0.0, False), (0.01, False), (-0.5, False),
                                            (0.0, True), (0.01, True)])
def test_forward_and_gradient(slope, inplace):
    layer, bottom, top = make_layer('type: "ReLU" relu_param { negative_slope: %g }' % slope,
                                    [(2, 3, 4, 5)], seed=3, inplace=inplace)
    x = bottom[0].data.copy()
    layer.forward(bottom, top)
    slope32 = float(np.float32(slope))
    np.testing.assert_allclose(top[0].data, np.where(x > 0, x, slope32 * x), rtol=1e-12)
    bottom[0].data[...] = x
    # Caffe's ReLU check: kink at 0 with a 0.01 margin.
    GradientChecker(1e-2, 1e-3, kink=0.0, kink_range=0.01).check_eltwise(layer, bottom, top)


@pytest.mark.parametrize('slope', [0.0, 0.25])
def test_gradient_at_exactly_zero_is_the_negative_slope(slope):
    x = np.array([[-1.0, 0.0, 2.0]])
    layer, bottom, top = make_layer('type: "ReLU" relu_param { negative_slope: %g }' % slope,
                                    [x.shape], bottom_data=[x])
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, [[slope, slope, 1]])


def test_in_place_backward_reads_the_sign_of_the_output():
    x = np.array([-2.0, -0.5, 0.5, 3.0])
    layer, bottom, top = make_layer('type: "ReLU" relu_param { negative_slope: 0.1 }', [x.shape],
                                    bottom_data=[x], inplace=True)
    layer.forward(bottom, top)
    top[0].diff[...] = [1, 2, 3, 4]
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, [np.float32(0.1) * 1, np.float32(0.1) * 2, 3, 4])


def test_float32():
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    layer, bottom, top = make_layer('type: "ReLU"', [x.shape], bottom_data=[x], dtype=np.float32)
    layer.forward(bottom, top)
    assert top[0].data.dtype == np.float32
    np.testing.assert_array_equal(top[0].data, np.maximum(x, 0))


def test_in_place_with_a_negative_slope_is_wrong_as_in_caffe():
    """Caffe's backward tests the sign of bottom data, which in place is the output; with a negative
    slope a negative input becomes positive and gets gradient 1 (Caffe's bug, kept)."""
    x = np.array([-2.0])
    layer, bottom, top = make_layer('type: "ReLU" relu_param { negative_slope: -0.5 }', [x.shape],
                                    bottom_data=[x], inplace=True)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    assert bottom[0].diff.tolist() == [1.0]
