"""InfogainLoss (cct/layers/infogain_loss.py): the internal softmax, H from a binaryproto file or a
third bottom, any axis, ignore_label under each normalization, the probability top, gradients, and
the rejected ``normalize`` (Caffe's test_infogain_loss_layer)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.io import array_to_blobproto, write_binary
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

GEN = np.random.default_rng(41)
H = GEN.uniform(0, 1, (4, 4))


def naive(scores, labels, matrix, axis, ignore=None):
    moved = np.moveaxis(scores, axis, -1).reshape(-1, scores.shape[axis])
    prob = np.exp(moved - moved.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    loss, count = 0.0, 0
    for row, label in zip(prob, labels.reshape(-1).astype(int)):
        if label == ignore:
            continue
        loss -= (matrix[label] * np.log(np.maximum(row, 1e-20))).sum()
        count += 1
    return loss, count


def infogain(scores_shape, labels, params='', num_top=1, matrix_bottom=True):
    scores = np.random.default_rng(43).standard_normal(scores_shape)
    shapes = [scores_shape, labels.shape] + ([(1, 1, 4, 4)] if matrix_bottom else [])
    data = [scores, labels] + ([H.reshape(1, 1, 4, 4)] if matrix_bottom else [])
    return make_layer('type: "InfogainLoss" %s' % params, shapes, num_top=num_top,
                      bottom_data=data)


def test_matrix_from_source_file(tmp_path):
    path = tmp_path / 'H.binaryproto'
    write_binary(array_to_blobproto(H.reshape(1, 1, 4, 4)), str(path))
    labels = np.array([0.0, 3.0, 2.0, 1.0, 3.0])
    layer, bottom, top = infogain((5, 4), labels, 'infogain_loss_param { source: "%s" }' % path,
                                  matrix_bottom=False)
    layer.forward(bottom, top)
    loss, count = naive(bottom[0].data, labels, H, 1)
    assert top[0].data == pytest.approx(loss / count, rel=1e-6)
    GradientChecker(1e-4, 2e-2).check(layer, bottom, top, check_bottom=0)


@pytest.mark.parametrize('axis', [1, 2, -1])
def test_axis_forward_and_gradient(axis):
    shape = [2, 3, 3]
    shape[axis] = 4
    labels = np.random.default_rng(5).integers(0, 4, (2, 3)).astype(float)
    layer, bottom, top = infogain(tuple(shape), labels,
                                  'loss_weight: 1 loss_weight: 0 '
                                  'infogain_loss_param { axis: %d }' % axis, num_top=2)
    layer.forward(bottom, top)
    loss, count = naive(bottom[0].data, labels, H, axis % 3)
    assert top[0].data == pytest.approx(loss / count, rel=1e-10)
    prob = np.exp(bottom[0].data) / np.exp(bottom[0].data).sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(top[1].data, prob, rtol=1e-10)
    GradientChecker(1e-4, 2e-2).check(layer, bottom, top, check_bottom=0, top_id=0)


@pytest.mark.parametrize('normalization, divisor', [('VALID', 'valid'), ('FULL', 8),
                                                    ('BATCH_SIZE', 2), ('NONE', 1)])
def test_ignore_label_normalizations(normalization, divisor):
    labels = np.array([[0.0, 7.0, 2.0, 3.0], [7.0, 1.0, 1.0, 0.0]])
    layer, bottom, top = infogain((2, 4, 4), labels, 'loss_param { ignore_label: 7 '
                                  'normalization: %s }' % normalization)
    layer.forward(bottom, top)
    loss, count = naive(bottom[0].data, labels, H, 1, ignore=7)
    assert top[0].data == pytest.approx(loss / (count if divisor == 'valid' else divisor),
                                        rel=1e-10)
    top[0].diff[...] = 1
    layer.backward(top, [True, False, False], bottom)
    assert not bottom[0].diff[0, :, 1].any() and not bottom[0].diff[1, :, 0].any()
    GradientChecker(1e-4, 2e-2).check(layer, bottom, top, check_bottom=0)


def test_identity_matrix_matches_softmax_loss():
    labels = np.array([2.0, 0.0, 3.0])
    scores = np.random.default_rng(2).standard_normal((3, 4))
    layer, bottom, top = make_layer('type: "InfogainLoss"', [(3, 4), (3,), (4, 4)],
                                    bottom_data=[scores, labels, np.eye(4)])
    layer.forward(bottom, top)
    softmax, b2, t2 = make_layer('type: "SoftmaxWithLoss"', [(3, 4), (3,)],
                                 bottom_data=[scores, labels])
    softmax.forward(b2, t2)
    assert top[0].data == pytest.approx(float(t2[0].data), rel=1e-12)


def test_errors():
    labels = np.array([0.0, 1.0])
    with pytest.raises(NetError, match='normalize is deprecated'):
        infogain((2, 4), labels, 'loss_param { normalize: true }')
    with pytest.raises(NetError, match='source must be specified'):
        infogain((2, 4), labels, matrix_bottom=False)
    with pytest.raises(NetError, match='H must be 3x3'):
        infogain((2, 3), labels)
    with pytest.raises(NetError, match='number of labels'):
        infogain((2, 4), np.array([[0.0, 1.0], [2.0, 3.0]]))
    layer, bottom, top = infogain((2, 4), labels)
    layer.forward(bottom, top)
    with pytest.raises(NetError, match='infogain inputs'):
        layer.backward(top, [True, False, True], bottom)
    assert not layer.allow_force_backward(2)
