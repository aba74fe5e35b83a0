"""SoftmaxWithLoss (cct/layers/softmax_loss.py): the loss against a reference written here, ignore_label
under every normalization (and the legacy ``normalize``), spatial labels along ``axis``, the optional
probability top, gradients, and the errors (Caffe's test_softmax_with_loss_layer)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

FLT_MIN = np.finfo(np.float32).tiny


def loss_layer(params='', shape=(4, 5, 2, 3), labels=None, num_top=1, **kwargs):
    gen = np.random.default_rng(7)
    x = gen.standard_normal(shape)
    if labels is None:
        labels = gen.integers(0, shape[1], (shape[0],) + shape[2:]).astype(float)
    return make_layer('type: "SoftmaxWithLoss" %s' % params, [x.shape, labels.shape],
                      bottom_data=[x, labels], num_top=num_top, **kwargs)


def reference(x, labels, ignore=None, mode='VALID', axis=1):
    prob = np.exp(x - x.max(axis=axis, keepdims=True))
    prob /= prob.sum(axis=axis, keepdims=True)
    moved = np.moveaxis(prob, axis, -1).reshape(-1, x.shape[axis])
    flat = labels.reshape(-1).astype(int)
    valid = np.ones(flat.shape, bool) if ignore is None else flat != ignore
    picked = moved[np.arange(flat.size), np.where(valid, flat, 0)]
    total = -np.log(np.maximum(picked[valid], FLT_MIN)).sum()
    outer = int(np.prod(x.shape[:axis]))
    normalizer = {'FULL': flat.size, 'VALID': valid.sum(), 'BATCH_SIZE': outer, 'NONE': 1}[mode]
    return total / max(1.0, normalizer), prob


@pytest.mark.parametrize('mode', ['FULL', 'VALID', 'BATCH_SIZE', 'NONE'])
@pytest.mark.parametrize('ignore', [None, 2])
def test_every_normalization_with_and_without_ignore_label(mode, ignore):
    params = 'loss_param { normalization: %s %s }' % (
        mode, '' if ignore is None else 'ignore_label: %d' % ignore)
    layer, bottom, top = loss_layer(params)
    layer.forward(bottom, top)
    expected, _ = reference(bottom[0].data, bottom[1].data, ignore, mode)
    assert float(top[0].data) == pytest.approx(expected, rel=1e-12)
    GradientChecker(1e-2, 1e-2).check(layer, bottom, top, check_bottom=0)
    if ignore is not None:
        layer.forward(bottom, top)
        top[0].diff[...] = 1
        layer.backward(top, [True, False], bottom)
        ignored = np.broadcast_to((bottom[1].data == ignore)[:, None], bottom[0].shape)
        assert not bottom[0].diff[ignored].any()   # ignored positions get no gradient


@pytest.mark.parametrize('normalize, mode', [('true', 'VALID'), ('false', 'BATCH_SIZE')])
def test_legacy_normalize(normalize, mode):
    layer, bottom, top = loss_layer('loss_param { normalize: %s ignore_label: 0 }' % normalize)
    layer.forward(bottom, top)
    expected, _ = reference(bottom[0].data, bottom[1].data, 0, mode)
    assert float(top[0].data) == pytest.approx(expected, rel=1e-12)


def test_normalization_wins_over_normalize():
    layer, bottom, top = loss_layer('loss_param { normalize: false normalization: FULL }')
    layer.forward(bottom, top)
    assert float(top[0].data) == pytest.approx(reference(bottom[0].data, bottom[1].data,
                                                         mode='FULL')[0], rel=1e-12)


def test_all_labels_ignored_gives_zero_not_nan():
    labels = np.full((4, 2, 3), 1.0)
    layer, bottom, top = loss_layer('loss_param { ignore_label: 1 }', labels=labels)
    layer.forward(bottom, top)
    assert float(top[0].data) == 0.0


def test_axis_and_the_probability_top():
    shape = (2, 3, 4)
    labels = np.random.default_rng(2).integers(0, 4, (2, 3)).astype(float)
    layer, bottom, top = loss_layer('softmax_param { axis: 2 } loss_weight: 1 loss_weight: 0',
                                    shape=shape, labels=labels, num_top=2)
    assert top[0].shape == () and top[1].shape == shape
    layer.forward(bottom, top)
    expected, prob = reference(bottom[0].data, labels, axis=2)
    assert float(top[0].data) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(top[1].data, prob, rtol=1e-12)
    GradientChecker(1e-2, 1e-2).check(layer, bottom, top, check_bottom=0, top_id=0)


def test_default_loss_weight_and_gradient_scale():
    layer, bottom, top = loss_layer()
    assert layer.loss_weights == [1.0]
    assert (top[0].diff == 1).all()    # the net seeds backward with the loss weight
    layer.forward(bottom, top)
    top[0].diff[...] = 3
    layer.backward(top, [True, False], bottom)
    once = bottom[0].diff.copy()
    top[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(once, 3 * bottom[0].diff, rtol=1e-12)


@pytest.mark.parametrize('shapes, labels, message', [
    (((4, 5), (3,)), None, 'the data and label should have the same first dimension'),
    (((4, 5, 2), (4, 3)), None, 'number of labels must match number of predictions'),
    (((2, 3), (2,)), np.array([0.0, 3.0]), r'label 3 out of range \[0, 3\)'),
])
def test_errors(shapes, labels, message):
    x = np.zeros(shapes[0])
    y = labels if labels is not None else np.zeros(shapes[1])
    with pytest.raises(NetError, match=message):
        layer, bottom, top = make_layer('type: "SoftmaxWithLoss"', list(shapes),
                                        bottom_data=[x, y])
        layer.forward(bottom, top)


def test_no_gradient_to_the_labels():
    layer, bottom, top = loss_layer()
    layer.forward(bottom, top)
    with pytest.raises(NetError, match='cannot backpropagate to label inputs'):
        layer.backward(top, [True, True], bottom)


def test_directional_gradient_at_a_realistic_size():
    """ImageNet's 1000 classes over a batch, with ignored labels."""
    gen = np.random.default_rng(3)
    x = gen.standard_normal((32, 1000))
    labels = gen.integers(0, 1000, 32).astype(float)
    labels[::5] = 7
    layer, bottom, top = make_layer('type: "SoftmaxWithLoss" loss_param { ignore_label: 7 }',
                                    [x.shape, labels.shape], bottom_data=[x, labels])
    GradientChecker(1e-3, 1e-4).check_directional(layer, bottom, top, check_bottom=0)
