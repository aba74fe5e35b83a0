"""Embed (cct/layers/embed.py): shapes, rows picked by integer indices, repeated indices adding up in
the weight gradient, gradient checks of both params, and the index checks (Caffe's
test_embed_layer)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

TEXT = '''type: "Embed" embed_param { num_output: 4 input_dim: 5 bias_term: %s
          weight_filler { type: "uniform" min: -1 max: 1 }
          bias_filler { type: "uniform" min: -1 max: 1 } }'''
INDICES = np.array([[0, 4, 2], [2, 2, 1]], float)


def embed(bias='true', indices=INDICES):
    return make_layer(TEXT % bias, [indices.shape], bottom_data=[indices])


@pytest.mark.parametrize('bias', ['true', 'false'])
def test_forward(bias):
    layer, bottom, top = embed(bias)
    assert top[0].shape == (2, 3, 4)
    assert layer.blobs[0].shape == (5, 4)
    assert len(layer.blobs) == (2 if bias == 'true' else 1)
    layer.forward(bottom, top)
    expected = np.empty((2, 3, 4))
    for position in np.ndindex(INDICES.shape):
        expected[position] = layer.blobs[0].data[int(INDICES[position])]
        if bias == 'true':
            expected[position] += layer.blobs[1].data
    np.testing.assert_array_equal(top[0].data, expected)


@pytest.mark.parametrize('bias', ['true', 'false'])
def test_param_gradients(bias):
    layer, bottom, top = embed(bias)
    GradientChecker(1e-2, 1e-3).check(layer, bottom, top, check_bottom=-1)


def test_repeated_indices_accumulate():
    layer, bottom, top = embed('false')
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.blobs[0].diff[...] = 0
    layer.backward(top, [False], bottom)
    np.testing.assert_array_equal(layer.blobs[0].diff[:, 0], [1, 1, 3, 0, 1])


@pytest.mark.parametrize('value', [5.0, -1.0, 1.5])
def test_bad_indices(value):
    indices = INDICES.copy()
    indices[1, 2] = value
    layer, bottom, top = embed(indices=indices)
    with pytest.raises(NetError, match='integers in'):
        layer.forward(bottom, top)


def test_no_gradient_to_indices():
    layer, bottom, top = embed()
    layer.forward(bottom, top)
    with pytest.raises(NetError, match="can't backpropagate"):
        layer.backward(top, [True], bottom)
    assert not layer.allow_force_backward(0)
