"""ArgMax (cct/layers/argmax.py): Caffe's output shapes with and without axis, top_k and out_max_val,
ties broken towards the higher index, the top_k checks, and no backward (Caffe's
test_argmax_layer)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer

SHAPE = (2, 3, 4, 5)


def argmax(params, shape=SHAPE, data=None):
    return make_layer('type: "ArgMax" argmax_param { %s }' % params, [shape], seed=13,
                      bottom_data=None if data is None else [data])


def ranked(values, k):
    """Caffe's order: std::greater on (value, index) pairs."""
    order = sorted(range(len(values)), key=lambda j: (values[j], j), reverse=True)[:k]
    return order, [values[j] for j in order]


@pytest.mark.parametrize('params, expected_shape', [
    ('', (2, 1, 1, 1)),
    ('top_k: 4', (2, 1, 4, 1)),
    ('out_max_val: true', (2, 2, 1, 1)),
    ('out_max_val: true top_k: 3', (2, 2, 3, 1)),
    ('axis: 1', (2, 1, 4, 5)),
    ('axis: 2 top_k: 2', (2, 3, 2, 5)),
    ('axis: -1 top_k: 3 out_max_val: true', (2, 3, 4, 3)),
    ('axis: 0', (1, 3, 4, 5)),
])
def test_shapes(params, expected_shape):
    layer, bottom, top = argmax(params)
    assert top[0].shape == expected_shape


def test_shapes_pad_to_three_axes():
    assert argmax('', shape=(4, 6))[2][0].shape == (4, 1, 1)
    assert argmax('axis: 1 top_k: 2', shape=(4, 6))[2][0].shape == (4, 2)


@pytest.mark.parametrize('top_k', [1, 3])
@pytest.mark.parametrize('out_max_val', [False, True])
def test_forward_without_axis(top_k, out_max_val):
    layer, bottom, top = argmax('top_k: %d out_max_val: %s' % (top_k, str(out_max_val).lower()))
    layer.forward(bottom, top)
    for n in range(SHAPE[0]):
        indices, values = ranked(list(bottom[0].data[n].reshape(-1)), top_k)
        out = top[0].data[n].reshape(-1)
        np.testing.assert_array_equal(out[:top_k], indices)
        if out_max_val:
            np.testing.assert_array_equal(out[top_k:2 * top_k], values)


@pytest.mark.parametrize('axis, top_k', [(0, 1), (1, 2), (3, 4)])
@pytest.mark.parametrize('out_max_val', [False, True])
def test_forward_with_axis(axis, top_k, out_max_val):
    layer, bottom, top = argmax('axis: %d top_k: %d out_max_val: %s'
                                % (axis, top_k, str(out_max_val).lower()))
    layer.forward(bottom, top)
    moved = np.moveaxis(bottom[0].data, axis, -1)
    result = np.moveaxis(top[0].data, axis, -1)
    for position in np.ndindex(moved.shape[:-1]):
        indices, values = ranked(list(moved[position]), top_k)
        np.testing.assert_array_equal(result[position], values if out_max_val else indices)


def test_ties_go_to_the_higher_index():
    data = np.array([[3.0, 1.0, 3.0, 0.0, 3.0, 2.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])
    layer, bottom, top = argmax('top_k: 1', shape=(2, 6), data=data)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data.reshape(-1), [4, 5])
    layer, bottom, top = argmax('top_k: 4 out_max_val: true', shape=(2, 6), data=data)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data[0], [[4, 2, 0, 5], [3, 3, 3, 2]])
    np.testing.assert_array_equal(top[0].data[1], [[5, 4, 3, 2], [1, 1, 1, 1]])
    layer, bottom, top = argmax('axis: 1 top_k: 2', shape=(2, 6), data=data)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, [[4, 2], [5, 4]])


@pytest.mark.parametrize('params, message', [
    ('top_k: 0', 'not be less than 1'),
    ('top_k: 61', 'flattened bottom blob'),
    ('axis: 1 top_k: 4', 'dimension of the axis'),
    ('axis: 4', 'out of range'),
])
def test_errors(params, message):
    with pytest.raises(NetError, match=message):
        argmax(params)


def test_no_backward():
    layer, bottom, top = argmax('')
    with pytest.raises(NetError, match='no backward'):
        layer.backward(top, [True], bottom)
