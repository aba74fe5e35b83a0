"""SigmoidCrossEntropyLoss and MultinomialLogisticLoss (cct/layers/logistic_loss.py): values against
naive formulas, every normalization with and without ignore_label (BATCH_SIZE by default), gradients,
the 1e-20 probability floor, and the label checks (Caffe's test_sigmoid_cross_entropy_loss_layer and
test_multinomial_logistic_loss_layer)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

SHAPE = (4, 3, 2)


def sigmoid_ce(loss_param='', targets=None):
    gen = np.random.default_rng(29)
    logits = gen.standard_normal(SHAPE) * 3
    if targets is None:
        targets = gen.uniform(0, 1, SHAPE)
    return make_layer('type: "SigmoidCrossEntropyLoss" loss_param { %s }' % loss_param,
                      [SHAPE, SHAPE], bottom_data=[logits, targets])


def naive_sigmoid_ce(x, t, valid):
    p = 1 / (1 + np.exp(-x))
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))[valid].sum()


@pytest.mark.parametrize('loss_param, divisor', [
    ('', 4),
    ('normalization: FULL', 24),
    ('normalization: VALID', 24),
    ('normalization: BATCH_SIZE', 4),
    ('normalization: NONE', 1),
    ('normalize: true', 24),
    ('normalize: false', 4),
])
def test_sigmoid_ce_normalizations(loss_param, divisor):
    layer, bottom, top = sigmoid_ce(loss_param)
    layer.forward(bottom, top)
    expected = naive_sigmoid_ce(bottom[0].data, bottom[1].data, np.ones(SHAPE, bool)) / divisor
    assert top[0].data == pytest.approx(expected, rel=1e-10)
    GradientChecker(1e-2, 1e-2).check(layer, bottom, top, check_bottom=0)


@pytest.mark.parametrize('normalization, divisor', [('VALID', 'valid'), ('FULL', 24),
                                                    ('BATCH_SIZE', 4), ('NONE', 1)])
def test_sigmoid_ce_ignore_label(normalization, divisor):
    targets = np.random.default_rng(3).integers(0, 2, SHAPE).astype(float)
    targets[0, 0, :] = -1
    targets[2, 1, 1] = -1
    layer, bottom, top = sigmoid_ce('ignore_label: -1 normalization: %s' % normalization, targets)
    layer.forward(bottom, top)
    valid = targets != -1
    divisor = valid.sum() if divisor == 'valid' else divisor
    expected = naive_sigmoid_ce(bottom[0].data, targets, valid) / divisor
    assert top[0].data == pytest.approx(expected, rel=1e-10)
    top[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    assert not bottom[0].diff[~valid].any()
    GradientChecker(1e-2, 1e-2).check(layer, bottom, top, check_bottom=0)


def test_sigmoid_ce_is_stable_for_large_logits():
    logits = np.array([[800.0, -800.0, 0.0]])
    targets = np.array([[1.0, 0.0, 1.0]])
    layer, bottom, top = make_layer('type: "SigmoidCrossEntropyLoss"', [(1, 3), (1, 3)],
                                    bottom_data=[logits, targets])
    layer.forward(bottom, top)
    assert top[0].data == pytest.approx(np.log(2), rel=1e-12)


def test_sigmoid_ce_errors():
    with pytest.raises(NetError, match='same count'):
        make_layer('type: "SigmoidCrossEntropyLoss"', [(4, 3), (4, 2)])
    layer, bottom, top = sigmoid_ce()
    with pytest.raises(NetError, match='label inputs'):
        layer.backward(top, [True, True], bottom)


def multinomial(probs, labels):
    return make_layer('type: "MultinomialLogisticLoss"', [probs.shape, labels.shape],
                      bottom_data=[probs, labels])


def test_multinomial_forward_and_gradient():
    gen = np.random.default_rng(31)
    probs = gen.uniform(0.05, 1, (5, 4, 1, 1))
    labels = gen.integers(0, 4, (5, 1, 1, 1)).astype(float)
    layer, bottom, top = multinomial(probs, labels)
    layer.forward(bottom, top)
    picked = probs.reshape(5, 4)[np.arange(5), labels.reshape(-1).astype(int)]
    assert top[0].data == pytest.approx(-np.log(picked).sum() / 5, rel=1e-12)
    GradientChecker(1e-2, 2e-2, 1701, 0, 0.05).check(layer, bottom, top, check_bottom=0)


def test_multinomial_probability_floor():
    probs = np.array([[0.0, 1.0], [0.5, 0.5]])
    layer, bottom, top = multinomial(probs, np.array([0.0, 1.0]))
    layer.forward(bottom, top)
    assert top[0].data == pytest.approx((-np.log(1e-20) - np.log(0.5)) / 2, rel=1e-12)
    top[0].diff[...] = 1
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, [[-1 / 1e-20 / 2, 0], [0, -1 / 0.5 / 2]])


def test_multinomial_errors():
    with pytest.raises(NetError, match='label bottom'):
        make_layer('type: "MultinomialLogisticLoss"', [(3, 4), (3, 2)])
    layer, bottom, top = multinomial(np.full((2, 3), 0.3), np.array([0.0, 3.0]))
    with pytest.raises(NetError, match='out of range'):
        layer.forward(bottom, top)
