"""Tests of cct/layers/scale_bias.py: Scale and Bias."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

SHAPE = (2, 3, 2, 2)


def broadcast(operand, shape, axis):
    """``operand`` reshaped so that it broadcasts against ``shape`` from ``axis`` on."""
    operand = np.asarray(operand)
    if operand.ndim == 0:
        return operand
    axis %= len(shape)
    return operand.reshape((1,) * axis + operand.shape + (1,) * (len(shape) - axis -
                                                                  operand.ndim))


def randomize(layer, seed=3):
    gen = np.random.default_rng(seed)
    for blob in layer.blobs:
        blob.data[...] = gen.uniform(0.5, 1.5, blob.shape) * gen.choice([-1, 1], blob.shape)


# (scale_param, expected scale shape, axis used for broadcasting)
SCALE_SETTINGS = {
    'channels': ('', (3,), 1),
    'channels_bias': ('bias_term: true', (3,), 1),
    'to_the_end': ('num_axes: -1', (3, 2, 2), 1),
    'elementwise': ('axis: 0 num_axes: -1 bias_term: true', SHAPE, 0),
    'scalar': ('num_axes: 0', (), 1),
    'scalar_bias': ('axis: 2 num_axes: 0 bias_term: true', (), 2),
    'middle_two': ('axis: 1 num_axes: 2', (3, 2), 1),
    'negative_axis': ('axis: -1', (2,), 3),
    'last_two': ('axis: -2 num_axes: 2 bias_term: true', (2, 2), 2),
}


@pytest.mark.parametrize('setting', sorted(SCALE_SETTINGS))
def test_scale_setup_and_forward(setting):
    text, shape, axis = SCALE_SETTINGS[setting]
    layer, bottom, top = make_layer('type: "Scale" scale_param { %s }' % text, [SHAPE], seed=1)
    bias_term = 'bias_term' in text
    assert [blob.shape for blob in layer.blobs] == [shape] * (2 if bias_term else 1)
    assert (layer.blobs[0].data == 1).all()
    if bias_term:
        assert (layer.blobs[1].data == 0).all()
    randomize(layer)
    layer.forward(bottom, top)
    expected = bottom[0].data * broadcast(layer.blobs[0].data, SHAPE, axis)
    if bias_term:
        expected = expected + broadcast(layer.blobs[1].data, SHAPE, axis)
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-14)


@pytest.mark.parametrize('setting', sorted(SCALE_SETTINGS))
@pytest.mark.parametrize('inplace', [False, True])
def test_scale_gradient(setting, inplace):
    text = SCALE_SETTINGS[setting][0]
    layer, bottom, top = make_layer('type: "Scale" scale_param { %s }' % text, [SHAPE], seed=2,
                                    inplace=inplace)
    randomize(layer)
    GradientChecker(1e-3, 1e-3).check(layer, bottom, top)


@pytest.mark.parametrize('scale_shape, text', [
    ((3,), ''), ((3, 2), ''), ((), ''), ((2, 2), 'axis: 2'), ((3,), 'bias_term: true'),
    ((), 'bias_term: true'),
])
def test_scale_from_second_bottom(scale_shape, text):
    layer, bottom, top = make_layer('type: "Scale" scale_param { %s }' % text,
                                    [SHAPE, scale_shape], seed=4)
    bias_term = 'bias_term' in text
    assert len(layer.blobs) == (1 if bias_term else 0)
    if bias_term:
        assert layer.blobs[0].shape == scale_shape
        randomize(layer)
    axis = 2 if 'axis: 2' in text else 1
    layer.forward(bottom, top)
    expected = bottom[0].data * broadcast(bottom[1].data, SHAPE, axis)
    if bias_term:
        expected = expected + broadcast(layer.blobs[0].data, SHAPE, axis)
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-14)
    GradientChecker(1e-3, 1e-3).check(layer, bottom, top)


def test_scale_fillers():
    layer, _, _ = make_layer('type: "Scale" scale_param { filler { type: "constant" value: 3 } '
                             'bias_term: true bias_filler { type: "constant" value: -2 } }',
                             [SHAPE])
    np.testing.assert_array_equal(layer.blobs[0].data, 3)
    np.testing.assert_array_equal(layer.blobs[1].data, -2)


@pytest.mark.parametrize('type_name', ['Scale', 'Bias'])
@pytest.mark.parametrize('text, message', [
    ('num_axes: -2', 'num_axes must be non-negative'),
    ('axis: 2 num_axes: 3', 'extends past'),
    ('axis: 4', 'out of range'),
])
def test_invalid_axes(type_name, text, message):
    field = type_name.lower() + '_param'
    with pytest.raises(NetError, match=message):
        make_layer('type: "%s" %s { %s }' % (type_name, field, text), [SHAPE])


@pytest.mark.parametrize('type_name', ['Scale', 'Bias'])
def test_second_bottom_shape_mismatch(type_name):
    with pytest.raises(NetError, match='dimension mismatch'):
        make_layer('type: "%s"' % type_name, [SHAPE, (4,)])


def test_scale_param_gradient_accumulates_like_caffe():
    """Caffe accumulates the scale gradient, except when outer_dim is 1 and the scale has more
    than one element (or is element-wise): then it overwrites the diff."""
    accumulating, bottom, top = make_layer('type: "Scale"', [SHAPE], seed=5)
    overwriting, bottom1, top1 = make_layer('type: "Scale" scale_param { axis: 0 }',
                                            [(2, 3)], seed=5)
    scalar, bottom2, top2 = make_layer('type: "Scale" scale_param { axis: 0 num_axes: 0 }',
                                       [(2, 3)], seed=5)
    for layer, bot, tp, factor in ((accumulating, bottom, top, 2), (overwriting, bottom1, top1, 1),
                                   (scalar, bottom2, top2, 2)):
        layer.forward(bot, tp)
        tp[0].diff[...] = 1
        layer.blobs[0].diff[...] = 0
        layer.backward(tp, [True], bot)
        once = layer.blobs[0].diff.copy()
        layer.backward(tp, [True], bot)
        np.testing.assert_allclose(layer.blobs[0].diff, factor * once)


def test_scale_bias_gradient_accumulates():
    layer, bottom, top = make_layer('type: "Scale" scale_param { bias_term: true }', [SHAPE])
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.blobs[1].diff[...] = 0
    layer.backward(top, [True], bottom)
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[1].diff, 2 * 8)


@pytest.mark.parametrize('text, shape, axis', [
    ('', (3,), 1), ('num_axes: -1', (3, 2, 2), 1), ('num_axes: 0', (), 0),
    ('axis: 0 num_axes: 2 filler { type: "constant" value: 0.5 }', (2, 3), 0),
])
@pytest.mark.parametrize('inplace', [False, True])
def test_bias(text, shape, axis, inplace):
    layer, bottom, top = make_layer('type: "Bias" bias_param { %s }' % text, [SHAPE], seed=6,
                                    inplace=inplace)
    assert layer.blobs[0].shape == shape
    assert (layer.blobs[0].data == (0.5 if 'value' in text else 0)).all()
    randomize(layer)
    x = bottom[0].data.copy()
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data, x + broadcast(layer.blobs[0].data, SHAPE, axis),
                               rtol=1e-14)
    bottom[0].data[...] = x
    GradientChecker(1e-3, 1e-3).check(layer, bottom, top)


@pytest.mark.parametrize('bias_shape', [(3,), (3, 2, 2), ()])
def test_bias_from_second_bottom(bias_shape):
    layer, bottom, top = make_layer('type: "Bias"', [SHAPE, bias_shape], seed=7)
    assert len(layer.blobs) == 0
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data,
                               bottom[0].data + broadcast(bottom[1].data, SHAPE, 1), rtol=1e-14)
    GradientChecker(1e-3, 1e-3).check(layer, bottom, top)
    # The second bottom's gradient is written, not accumulated.
    top[0].diff[...] = 1
    bottom[1].diff[...] = 100
    layer.backward(top, [False, True], bottom)
    np.testing.assert_allclose(bottom[1].diff, np.full(bias_shape, 24 / bottom[1].count))


def test_float32():
    for text in ('type: "Scale" scale_param { bias_term: true }', 'type: "Bias"'):
        layer, bottom, top = make_layer(text, [SHAPE], seed=1, dtype=np.float32)
        randomize(layer)
        layer.forward(bottom, top)
        assert top[0].data.dtype == np.float32
        expected = bottom[0].data.astype(np.float64)
        if text.startswith('type: "Scale"'):
            expected = expected * broadcast(layer.blobs[0].data, SHAPE, 1)
        expected = expected + broadcast(layer.blobs[-1].data, SHAPE, 1)
        np.testing.assert_allclose(top[0].data, expected, rtol=1e-6)
