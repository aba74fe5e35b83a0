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
    """y = w * x**3 (elementwise) for a learnable scalar w (w = 1, no blob, when ``with_param`` is
    False); ``error`` and ``param_error`` corrupt backward."""

    num_bottom = 1
    num_top = 1
    error = 0.0
    param_error = 0.0
    with_param = True

    def setup(self, bottom, top):
        if self.with_param:
            self.blobs.add_blob(1).data[...] = 1.5

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def weight(self):
        return self.blobs[0].data[0] if self.with_param else 1.0

    def forward(self, bottom, top):
        top[0].data[...] = self.weight() * bottom[0].data ** 3

    def backward(self, top, propagate_down, bottom):
        x, dy, w = bottom[0].data, top[0].diff, self.weight()
        if self.with_param:
            self.blobs[0].diff[...] += (dy * x ** 3).sum() * (1 + self.param_error)
        if propagate_down[0]:
            bottom[0].diff[...] = dy * 3 * w * x ** 2 * (1 + self.error)


def cube(error=0.0, param_error=0.0, shape=(2, 3), with_param=True):
    layer = Cube(caffe_pb2.LayerParameter(name='cube'), np.float64)
    layer.error, layer.param_error, layer.with_param = error, param_error, with_param
    bottom = [Blob(*shape, dtype=np.float64)]
    bottom[0].data[...] = np.random.default_rng(0).uniform(0.5, 1.0, shape)
    top = [Blob(dtype=np.float64)]
    layer.layer_setup(bottom, top)
    return layer, bottom, top


@pytest.mark.parametrize('mode', ['check', 'check_exhaustive', 'check_eltwise',
                                  'check_directional'])
def test_correct_backward_passes_every_mode(mode):
    # Caffe's element-wise mode takes no parameter blobs.
    layer, bottom, top = cube(with_param=mode != 'check_eltwise')
    getattr(GradientChecker(1e-3, 1e-3), mode)(layer, bottom, top)


@pytest.mark.parametrize('mode', ['check', 'check_exhaustive', 'check_eltwise',
                                  'check_directional'])
def test_wrong_bottom_gradient_fails_every_mode(mode):
    layer, bottom, top = cube(error=0.05, with_param=mode != 'check_eltwise')
    with pytest.raises(GradientCheckError, match=r"layer 'cube' \(type Python\): "):
        getattr(GradientChecker(1e-3, 1e-3), mode)(layer, bottom, top)


def test_wrong_parameter_gradient_fails_and_is_named():
    layer, bottom, top = cube(param_error=0.05)
    with pytest.raises(GradientCheckError, match='param blob 0, element'):
        GradientChecker(1e-3, 1e-3).check(layer, bottom, top)
    # The parameters alone (check_bottom=-1) catch it too.
    with pytest.raises(GradientCheckError):
        GradientChecker(1e-3, 1e-3).check(layer, bottom, top, check_bottom=-1)


def test_parameters_not_propagated_down_are_not_checked():
    """A param blob with param_propagate_down False (lr_mult 0 in a net) gets no gradient from the
    layer; the checker leaves it out, and checks it again once it is wanted."""
    layer, bottom, top = cube(param_error=0.05)
    layer.param_propagate_down = [False]
    GradientChecker(1e-3, 1e-3).check(layer, bottom, top)
    layer.param_propagate_down = [True]
    with pytest.raises(GradientCheckError, match='param blob 0'):
        GradientChecker(1e-3, 1e-3).check(layer, bottom, top)


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


class LeakyCube(Cube):
    """y = x**3 elementwise, but backward leaks 1% of each top diff to the next element."""

    with_param = False

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff.reshape(-1)
        grad = dy * 3 * bottom[0].data.reshape(-1) ** 2 + 0.01 * np.roll(dy, 1)
        bottom[0].diff[...] = grad.reshape(bottom[0].shape)


def test_eltwise_mode_checks_the_off_diagonal_gradients_are_zero():
    """Caffe's element-wise check skips the finite differences off the diagonal but still asserts
    the analytic gradient there is 0: a backward leaking into a neighbour fails."""
    layer = LeakyCube(caffe_pb2.LayerParameter(name='leaky'), np.float64)
    bottom = [Blob(2, 3, dtype=np.float64)]
    bottom[0].data[...] = np.random.default_rng(0).uniform(0.5, 1.0, (2, 3))
    top = [Blob(dtype=np.float64)]
    layer.layer_setup(bottom, top)
    with pytest.raises(GradientCheckError, match=r'element \(0, 1\).*numeric 0\b'):
        GradientChecker(1e-3, 1e-3).check_eltwise(layer, bottom, top)


def test_eltwise_mode_refuses_layers_with_parameters_and_unequal_counts():
    layer, bottom, top = cube()
    with pytest.raises(ValueError, match='without parameter blobs'):
        GradientChecker().check_eltwise(layer, bottom, top)
    pool, bottom, top = make_layer('type: "Pooling" pooling_param { kernel_size: 2 }',
                                   [(1, 1, 2, 2)], seed=1)
    with pytest.raises(ValueError, match='of one count'):
        GradientChecker().check_eltwise(pool, bottom, top)
