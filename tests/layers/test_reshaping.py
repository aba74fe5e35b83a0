"""Flatten and Reshape (cct/layers/reshaping.py): output shapes, memory shared with the bottom in both
directions, in-place refused, Reshape's 0/-1/axis/num_axes rules and its errors (Caffe's
test_flatten_layer and test_reshape_layer)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.io import parse_text
from cct.net import Net
from cct.proto import caffe_pb2
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

SHAPE = (2, 3, 6, 5)


def build(text, shape=SHAPE, **kwargs):
    return make_layer(text, [shape], seed=5, **kwargs)


@pytest.mark.parametrize('params, expected', [
    ('', (2, 90)),
    ('axis: 2', (2, 3, 30)),
    ('axis: 1 end_axis: 2', (2, 18, 5)),
    ('axis: 0 end_axis: -2', (36, 5)),
    ('axis: -1', (2, 3, 6, 5)),
])
def test_flatten_shapes(params, expected):
    layer, bottom, top = build('type: "Flatten" flatten_param { %s }' % params)
    layer.forward(bottom, top)
    assert top[0].shape == expected
    np.testing.assert_array_equal(top[0].data, bottom[0].data.reshape(expected))


@pytest.mark.parametrize('layer_type, params', [('Flatten', ''),
                                                ('Reshape', 'shape { dim: 0 dim: -1 }')])
def test_top_shares_data_and_diff(layer_type, params):
    layer, bottom, top = build('type: "%s" %s_param { %s }' % (layer_type, layer_type.lower(),
                                                               params))
    assert top[0].shares_data_with(bottom[0])
    bottom[0].data[0, 0, 0, 0] = 42
    assert top[0].data.reshape(-1)[0] == 42
    top[0].diff[...] = 3
    layer.backward(top, [True], bottom)
    assert (bottom[0].diff == 3).all()


@pytest.mark.parametrize('layer_type', ['Flatten', 'Reshape'])
def test_in_place_refused(layer_type):
    with pytest.raises(NetError, match='in-place'):
        Net(parse_text('''
            layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
            layer { name: "r" type: "%s" bottom: "x" top: "x" }''' % layer_type,
                       caffe_pb2.NetParameter()), caffe_pb2.TRAIN)


@pytest.mark.parametrize('params, expected', [
    ('shape { dim: 0 dim: -1 }', (2, 90)),
    ('shape { dim: 6 dim: 30 }', (6, 30)),
    ('shape { dim: -1 dim: 5 }', (36, 5)),
    ('shape { dim: 0 dim: 0 dim: 2 dim: -1 }', (2, 3, 2, 15)),
    ('shape { dim: 1 dim: 1 } axis: 0 num_axes: 0', (1, 1, 2, 3, 6, 5)),
    ('shape { dim: 18 } axis: 1 num_axes: 2', (2, 18, 5)),
    ('shape { dim: 3 dim: 2 } axis: 2 num_axes: 1', (2, 3, 3, 2, 5)),
    ('shape { dim: 1 } axis: -1 num_axes: 0', (2, 3, 6, 5, 1)),
    ('shape { dim: -1 } axis: -3', (2, 3, 30)),
    ('shape { dim: 0 dim: 1 } axis: 2 num_axes: 1', (2, 3, 6, 1, 5)),
    ('shape { } axis: 1 num_axes: 0', (2, 3, 6, 5)),
])
def test_reshape_shapes(params, expected):
    layer, bottom, top = build('type: "Reshape" reshape_param { %s }' % params)
    layer.forward(bottom, top)
    assert top[0].shape == expected
    np.testing.assert_array_equal(top[0].data, bottom[0].data.reshape(expected))


def test_reshape_follows_a_new_bottom_shape():
    layer, bottom, top = build('type: "Reshape" reshape_param { shape { dim: 0 dim: -1 } }')
    bottom[0].reshape(4, 3, 2, 5)
    layer.reshape(bottom, top)
    assert top[0].shape == (4, 30) and top[0].shares_data_with(bottom[0])


@pytest.mark.parametrize('params, message', [
    ('shape { dim: -1 dim: -1 }', 'multiple -1'),
    ('shape { dim: 7 dim: -1 }', 'divisible'),
    ('shape { dim: 2 dim: 3 }', 'must match input count'),
    ('shape { dim: 0 dim: 0 dim: 0 dim: 0 dim: 0 }', 'no corresponding bottom axis'),
    ('shape { dim: 2 } axis: 5', 'out of range'),
    ('shape { dim: 2 } axis: -6', 'out of range'),
    ('shape { dim: 2 } axis: 3 num_axes: 2', 'out of range'),
    ('shape { dim: -2 }', 'positive'),
    ('shape { }', 'must match input count'),
])
def test_reshape_errors(params, message):
    with pytest.raises(NetError, match=message):
        build('type: "Reshape" reshape_param { %s }' % params)


def test_flatten_bad_axis():
    with pytest.raises(NetError, match='out of range'):
        build('type: "Flatten" flatten_param { axis: 4 }')


@pytest.mark.parametrize('text', ['type: "Flatten" flatten_param { axis: 1 end_axis: 2 }',
                                  'type: "Reshape" reshape_param { shape { dim: -1 dim: 10 } }'])
def test_gradient_passes_through_unchanged(text):
    layer, bottom, top = build(text)
    GradientChecker(1e-2, 1e-3).check(layer, bottom, top)
