"""The shared gradient checker (cct/testing/gradcheck.py) fails on wrong gradients, in each mode, and
honours Caffe's threshold and kink semantics."""
import numpy as np
import pytest

from cct.blob import Blob
from cct.layers.base import Layer
from cct.proto import caffe_pb2
from cct.testing import make_layer
from cct.testing.gradcheck import GradientCheckError, GradientChecker


class Cube(Layer):
    """y = x**3 (elementwise) and y = w * x for a learnable scalar w; ``error`` corrupts backward."""

    num_bottom = 1
    num_top = 1
    error = 0.0
    param_error = 0.0

    def setup(self, bottom, top):
        self.blobs.add_blob(1).data[...] = 1.5

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data[0] * bottom[0].data ** 3

    def backward(self, top, propagate_down, bottom):
        x, dy, w = bottom[0].data, top[0].diff, self.blobs[0].data[0]
        self.blobs[0].diff[...] += (dy * x ** 3).sum() * (1 + self.param_error)
        if propagate_down[0]:
            bottom[0].diff[...] = dy * 3 * w * x ** 2 * (1 + self.error)


def cube(error=0.0, param_error=0.0, shape=(2, 3)):
    layer = Cube(caffe_pb2.LayerParameter(name='cube'), np.float64)
    layer.error, layer.param_error = error, param_error
    bottom = [Blob(*shape, dtype=np.float64)]
    bottom[0].data[...] = np.random.default_rng(0).uniform(0.5, 1.0, shape)
    top = [Blob(dtype=np.float64)]
    layer.layer_setup(bottom, top)
    return layer, bottom, top


@pytest.mark.parametrize('mode', ['check', 'check_exhaustive', 'check_eltwise',
                                  'check_directional'])
def test_correct_backward_passes_every_mode(mode):
    layer, bottom, top = cube()
    getattr(GradientChecker(1e-3, 1e-3), mode)(layer, bottom, top)


@pytest.mark.parametrize('mode', ['check', 'check_exhaustive', 'check_eltwise',
                                  'check_directional'])
def test_wrong_bottom_gradient_fails_every_mode(mode):
    layer, bottom, top = cube(error=0.05)
    with pytest.raises(GradientCheckError, match=r"layer 'cube' \(type Python\): "):
        getattr(GradientChecker(1e-3, 1e-3), mode)(layer, bottom, top)


def test_wrong_parameter_gradient_fails_and_is_named():
    layer, bottom, top = cube(param_error=0.05)
    with pytest.raises(GradientCheckError, match='param blob 0, element'):
        GradientChecker(1e-3, 1e-3).check(layer, bottom, top)
    # The parameters alone (check_bottom=-1) catch it too.
    with pytest.raises(GradientCheckError):
        GradientChecker(1e-3, 1e-3).check(layer, bottom, top, check_bottom=-1)


def test_threshold_is_relative_to_the_larger_magnitude():
    layer, bottom, top = cube(error=0.0005)
    GradientChecker(1e-3, 1e-3).check(layer, bottom, top)       # 0.05% off is within 0.1%
    with pytest.raises(GradientCheckError):
        GradientChecker(1e-3, 1e-4).check(layer, bottom, top)


def test_kink_range_skips_non_differentiable_points():
    """ReLU at exactly 0 has no derivative; a kink range around 0 skips that element."""
    x = np.array([[0.0, 1.0, -1.0]])
    layer, bottom, top = make_layer('type: "ReLU"', [x.shape], bottom_data=[x])
    with pytest.raises(GradientCheckError, match=r'element \(0, 0\) \(value 0\)'):
        GradientChecker(1e-2, 1e-3).check(layer, bottom, top)
    GradientChecker(1e-2, 1e-3, kink=0.0, kink_range=0.01).check(layer, bottom, top)


def test_bottoms_are_restored_after_a_check():
    layer, bottom, top = make_layer('type: "ReLU"', [(2, 3)], seed=1, inplace=True)
    before = bottom[0].data.copy()
    GradientChecker(1e-2, 1e-3, kink_range=0.01).check_exhaustive(layer, bottom, top)
    np.testing.assert_array_equal(bottom[0].data, before)
