"""Concat (cct/layers/concat.py): shapes along every axis, forward against np.concatenate, gradients
to each bottom, the deprecated concat_dim, the one-bottom data sharing and the shape errors (Caffe's
test_concat_layer)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker


def concat(params, shapes, seed=5):
    return make_layer('type: "Concat" concat_param { %s }' % params, shapes, seed=seed)


@pytest.mark.parametrize('params, axis, shapes', [
    ('', 1, [(2, 3, 6, 5), (2, 5, 6, 5)]),                        # Caffe's TestSetupChannels
    ('axis: 0', 0, [(2, 3, 6, 5), (5, 3, 6, 5)]),                 # TestSetupNum
    ('axis: -1', 2, [(2, 3, 4), (2, 3, 1), (2, 3, 2)]),
    ('concat_dim: 2', 2, [(1, 2, 3, 4), (1, 2, 5, 4)]),
    ('concat_dim: 0', 0, [(4,), (3,)]),
])
def test_forward_and_gradient(params, axis, shapes):
    layer, bottom, top = concat(params, shapes)
    expected_shape = list(shapes[0])
    expected_shape[axis] = sum(shape[axis] for shape in shapes)
    assert top[0].shape == tuple(expected_shape)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data,
                                  np.concatenate([b.data for b in bottom], axis=axis))
    GradientChecker(1e-2, 1e-2).check(layer, bottom, top)


def test_backward_hands_each_bottom_its_slice():
    layer, bottom, top = concat('axis: 1', [(2, 1, 3), (2, 2, 3)])
    top[0].diff[...] = np.arange(top[0].count).reshape(top[0].shape)
    layer.backward(top, [False, True], bottom)
    np.testing.assert_array_equal(bottom[1].diff, top[0].diff[:, 1:])
    assert not bottom[0].diff.any()


def test_one_bottom_shares_data_and_diff():
    layer, bottom, top = concat('', [(2, 3)])
    assert top[0].shares_data_with(bottom[0])
    bottom[0].data[...] = 4
    layer.forward(bottom, top)
    assert (top[0].data == 4).all()
    top[0].diff[...] = 2
    layer.backward(top, [True], bottom)
    assert (bottom[0].diff == 2).all()


def test_reshape_follows_new_bottom_shapes():
    layer, bottom, top = concat('axis: 0', [(2, 3), (1, 3)])
    bottom[1].reshape(4, 3)
    layer.reshape(bottom, top)
    assert top[0].shape == (6, 3)


@pytest.mark.parametrize('params, shapes, message', [
    ('axis: 1 concat_dim: 1', [(2, 3), (2, 3)], 'not both'),
    ('', [(2, 3, 4), (2, 3)], 'same number of axes'),
    ('', [(2, 3, 4), (2, 3, 5)], 'except at concat_axis 1'),
    ('axis: 3', [(2, 3), (2, 3)], 'out of range'),
    ('concat_dim: 2', [(2, 3), (2, 3)], 'concat_dim 2 out of range'),
    ('concat_dim: 4294967295', [(2, 3), (2, 3)], 'negative result'),
])
def test_errors(params, shapes, message):
    with pytest.raises((NetError, ValueError), match=message):
        concat(params, shapes)
