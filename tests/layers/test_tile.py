"""Tile (cct/layers/tile.py): shapes, forward against np.tile semantics along each axis, gradients
(copies summed) and the tiles checks (Caffe's test_tile_layer)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

SHAPE = (2, 3, 4, 2)


@pytest.mark.parametrize('axis', [0, 1, 2, -1])
def test_forward_and_gradient(axis):
    layer, bottom, top = make_layer('type: "Tile" tile_param { axis: %d tiles: 3 }' % axis,
                                    [SHAPE], seed=7)
    layer.forward(bottom, top)
    reps = [1] * 4
    reps[axis] = 3
    # Caffe repeats the whole block from the axis on: np.tile along that axis.
    np.testing.assert_array_equal(top[0].data, np.tile(bottom[0].data, reps))
    GradientChecker(1e-2, 1e-2).check(layer, bottom, top)


def test_default_axis_and_backward_sums_copies():
    layer, bottom, top = make_layer('type: "Tile" tile_param { tiles: 2 }', [SHAPE], seed=7)
    assert top[0].shape == (2, 6, 4, 2)
    top[0].diff[...] = np.arange(top[0].count).reshape(top[0].shape)
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, top[0].diff[:, :3] + top[0].diff[:, 3:])


@pytest.mark.parametrize('params, message', [('axis: 1', 'must be specified'),
                                             ('tiles: 0', 'positive'),
                                             ('tiles: 2 axis: 4', 'out of range')])
def test_errors(params, message):
    with pytest.raises(NetError, match=message):
        make_layer('type: "Tile" tile_param { %s }' % params, [SHAPE])
