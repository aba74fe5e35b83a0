"""EuclideanLoss and ContrastiveLoss (cct/layers/distance_loss.py): values against naive formulas,
gradients to both feature bottoms (legacy and current contrastive forms), and the shape checks
(Caffe's test_euclidean_loss_layer and test_contrastive_loss_layer)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker


@pytest.mark.parametrize('shapes', [[(5, 3, 2), (5, 3, 2)], [(4, 6), (4, 2, 3)]])
def test_euclidean_forward_and_gradient(shapes):
    layer, bottom, top = make_layer('type: "EuclideanLoss"', shapes, seed=17)
    assert top[0].shape == () and layer.loss_weights == [1.0]
    layer.forward(bottom, top)
    a, b = bottom[0].data, bottom[1].data.reshape(bottom[0].shape)
    assert top[0].data == pytest.approx(((a - b) ** 2).sum() / shapes[0][0] / 2, rel=1e-12)
    GradientChecker(1e-2, 1e-2).check(layer, bottom, top)


def test_euclidean_gradient_is_opposite_for_the_two_bottoms():
    layer, bottom, top = make_layer('type: "EuclideanLoss"', [(3, 4), (3, 4)], seed=1)
    layer.forward(bottom, top)
    top[0].diff[...] = 0.5
    layer.backward(top, [True, True], bottom)
    expected = 0.5 * (bottom[0].data - bottom[1].data) / 3
    np.testing.assert_allclose(bottom[0].diff, expected, rtol=1e-12)
    np.testing.assert_allclose(bottom[1].diff, -expected, rtol=1e-12)
    assert layer.allow_force_backward(1)


def test_euclidean_shape_errors():
    with pytest.raises(NetError, match='same dimension'):
        make_layer('type: "EuclideanLoss"', [(3, 4), (3, 5)])
    with pytest.raises(NetError, match='same first dimension'):
        make_layer('type: "EuclideanLoss"', [(3, 4), (2, 6)])


def contrastive(params='', shape=(6, 4)):
    gen = np.random.default_rng(23)
    features = [gen.uniform(-0.5, 0.5, shape), gen.uniform(-0.5, 0.5, shape)]
    similar = np.array([1, 0, 0, 1, 0, 0], float).reshape((6,) + (1,) * (len(shape) - 1))
    return make_layer('type: "ContrastiveLoss" contrastive_loss_param { %s }' % params,
                      [shape, shape, similar.shape], bottom_data=features + [similar])


@pytest.mark.parametrize('legacy', [False, True])
@pytest.mark.parametrize('margin', [1.0, 0.25])
def test_contrastive_forward(legacy, margin):
    layer, bottom, top = contrastive('margin: %g legacy_version: %s' % (margin, str(legacy).lower()))
    layer.forward(bottom, top)
    a, b = bottom[0].data.reshape(6, -1), bottom[1].data.reshape(6, -1)
    loss = 0.0
    for i in range(6):
        dist_sq = ((a[i] - b[i]) ** 2).sum()
        if bottom[2].data.reshape(-1)[i]:
            loss += dist_sq
        elif legacy:
            loss += max(margin - dist_sq, 0.0)
        else:
            loss += max(margin - np.sqrt(dist_sq), 0.0) ** 2
    assert top[0].data == pytest.approx(loss / 6 / 2, rel=1e-12)


@pytest.mark.parametrize('params', ['', 'legacy_version: true', 'margin: 0.6'])
def test_contrastive_gradient(params):
    layer, bottom, top = contrastive(params, shape=(6, 4, 1, 1))
    # Caffe's test thresholds: the 1e-4 in the dissimilar gradient's divisor costs some accuracy.
    GradientChecker(1e-2, 1e-2).check(layer, bottom, top, check_bottom=[0, 1])


def test_contrastive_shape_errors():
    with pytest.raises(NetError, match='same channels'):
        make_layer('type: "ContrastiveLoss"', [(3, 4), (3, 5), (3,)])
    with pytest.raises(NetError, match='bottom 0'):
        make_layer('type: "ContrastiveLoss"', [(3, 4, 2), (3, 4, 2), (3,)])
    with pytest.raises(NetError, match='bottom 2'):
        make_layer('type: "ContrastiveLoss"', [(3, 4), (3, 4), (3, 2)])
    layer, bottom, top = contrastive()
    assert not layer.allow_force_backward(2)
