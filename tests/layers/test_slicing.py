"""Slice (cct/layers/slicing.py): slice points and equal splits along several axes, the deprecated
slice_dim, the single-top shared view, gradients, and Caffe's setup errors (test_slice_layer)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

SHAPE = (6, 5, 3, 2)


def slice_layer(params, num_top, shape=SHAPE):
    return make_layer('type: "Slice" slice_param { %s }' % params, [shape], num_top=num_top,
                      seed=3)


@pytest.mark.parametrize('params, num_top, axis, bounds', [
    ('axis: 0', 3, 0, [0, 2, 4, 6]),
    ('axis: 1 slice_point: 1 slice_point: 4', 3, 1, [0, 1, 4, 5]),
    ('axis: -1 slice_point: 1', 2, 3, [0, 1, 2]),
    ('slice_dim: 2 slice_point: 2', 2, 2, [0, 2, 3]),
])
def test_forward_backward(params, num_top, axis, bounds):
    layer, bottom, top = slice_layer(params, num_top)
    layer.forward(bottom, top)
    for blob, start, end in zip(top, bounds[:-1], bounds[1:]):
        index = [slice(None)] * 4
        index[axis] = slice(start, end)
        np.testing.assert_array_equal(blob.data, bottom[0].data[tuple(index)])
    GradientChecker(1e-2, 1e-3).check(layer, bottom, top)


def test_default_axis_is_channels_and_backward_reassembles():
    layer, bottom, top = slice_layer('slice_point: 2', 2)
    assert [blob.shape for blob in top] == [(6, 2, 3, 2), (6, 3, 3, 2)]
    top[0].diff[...] = 1
    top[1].diff[...] = 2
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff[:, :2], 1)
    np.testing.assert_array_equal(bottom[0].diff[:, 2:], 2)


def test_single_top_shares_memory():
    layer, bottom, top = slice_layer('axis: 1', 1)
    assert top[0].shape == SHAPE and top[0].shares_data_with(bottom[0])
    top[0].diff[...] = 7
    assert (bottom[0].diff == 7).all()


@pytest.mark.parametrize('params, num_top, message', [
    ('axis: 1 slice_dim: 1', 2, 'not both'),
    ('axis: 1 slice_point: 3 slice_point: 2', 3, 'strictly increasing'),
    ('axis: 1 slice_point: 0', 2, 'strictly increasing'),
    ('axis: 1 slice_point: 2 slice_point: 2', 3, 'strictly increasing'),
    ('axis: 1 slice_point: 6', 2, 'beyond the slice axis'),
    ('axis: 1 slice_point: 2', 3, 'exactly one fewer'),
    ('axis: 1', 2, 'evenly divide'),
    ('axis: 4', 2, 'out of range'),
    ('slice_dim: 4', 2, 'out of range'),
])
def test_errors(params, num_top, message):
    with pytest.raises(NetError, match=message):
        slice_layer(params, num_top)
