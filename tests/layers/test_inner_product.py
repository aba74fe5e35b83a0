"""InnerProduct (cct/layers/inner_product.py): y = x W^T + b over the axes from ``axis`` on, the
transposed weight layout, bias_term false, gradients, and the errors (Caffe's
test_inner_product_layer)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

FILLERS = 'weight_filler { type: "uniform" min: -1 max: 1 } bias_filler { type: "uniform" }'


def ip_layer(params, shape, **kwargs):
    return make_layer('type: "InnerProduct" inner_product_param { %s %s }' % (params, FILLERS),
                      [shape], **kwargs)


@pytest.mark.parametrize('params, shape, axis', [
    ('num_output: 10', (2, 3, 4, 5), 1),          # Caffe's TestSetUp blob
    ('num_output: 4 axis: 2', (2, 3, 4, 5), 2),
    ('num_output: 3 axis: -1', (2, 3, 4), 2),
    ('num_output: 3 axis: 0', (2, 3), 0),
    ('num_output: 4 transpose: true', (2, 3, 2), 1),
    ('num_output: 2 bias_term: false', (3, 5), 1),
    ('num_output: 2 transpose: true bias_term: false axis: 2', (2, 2, 3, 2), 2),
])
def test_forward_against_matmul_and_gradients(params, shape, axis):
    layer, bottom, top = ip_layer(params, shape, seed=2)
    outer = int(np.prod(shape[:axis]))
    inner = int(np.prod(shape[axis:]))
    outputs = int(params.split()[1])
    transpose = 'transpose: true' in params
    assert top[0].shape == shape[:axis] + (outputs,)
    assert layer.blobs[0].shape == ((inner, outputs) if transpose else (outputs, inner))
    layer.forward(bottom, top)
    weights = layer.blobs[0].data if transpose else layer.blobs[0].data.T
    expected = bottom[0].data.reshape(outer, inner) @ weights
    if 'bias_term: false' in params:
        assert len(layer.blobs) == 1
    else:
        expected = expected + layer.blobs[1].data
    np.testing.assert_allclose(top[0].data.reshape(outer, outputs), expected, rtol=1e-12)
    GradientChecker(1e-2, 1e-3).check(layer, bottom, top)


def test_transpose_is_the_same_map_with_stored_transposed_weights():
    """Caffe's TestForwardTranspose: copy W^T into the transposed layer, same outputs."""
    plain, bottom, top = ip_layer('num_output: 5', (2, 3, 4), seed=1)
    flipped, bottom_t, top_t = ip_layer('num_output: 5 transpose: true', (2, 3, 4), seed=1)
    flipped.blobs[0].data[...] = plain.blobs[0].data.T
    flipped.blobs[1].data[...] = plain.blobs[1].data
    plain.forward(bottom, top)
    flipped.forward(bottom_t, top_t)
    np.testing.assert_allclose(top_t[0].data, top[0].data, rtol=1e-12)


def test_reshape_keeps_k_and_follows_the_batch():
    layer, bottom, top = ip_layer('num_output: 2', (2, 3, 4))
    bottom[0].reshape(5, 12)
    layer.reshape(bottom, top)
    assert top[0].shape == (5, 2)
    bottom[0].reshape(5, 13)
    with pytest.raises(NetError, match='input size incompatible with inner product parameters'):
        layer.reshape(bottom, top)


def test_num_output_is_required():
    with pytest.raises(NetError, match='num_output must be specified'):
        make_layer('type: "InnerProduct"', [(2, 3)])


@pytest.mark.parametrize('params', ['num_output: 96', 'num_output: 64 transpose: true'])
def test_directional_gradient_at_a_realistic_size(params):
    """A CaffeNet-fc-like layer is too large for element-wise checks; the dot-product test along
    random directions covers weights, bias and input at once."""
    layer, bottom, top = ip_layer(params, (16, 32, 3, 3), seed=4)
    GradientChecker(1e-3, 1e-4).check_directional(layer, bottom, top, directions=4)
