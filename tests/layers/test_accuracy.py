"""Accuracy (cct/layers/accuracy.py): top_k with ties counting against, ignore_label out of the
denominator, labels along ``axis``, the per-class second top, and the errors (Caffe's
test_accuracy_layer)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer


def accuracy(params, scores, labels, num_top=1):
    layer, bottom, top = make_layer('type: "Accuracy" accuracy_param { %s }' % params,
                                    [scores.shape, labels.shape], bottom_data=[scores, labels],
                                    num_top=num_top)
    layer.forward(bottom, top)
    return [t.data.copy() for t in top]


def reference(scores, labels, top_k, ignore=None):
    """Correct when fewer than top_k classes score at least the true class's score (itself
    included): ties count against."""
    hits = count = 0
    for row, label in zip(scores, labels.astype(int)):
        if label == ignore:
            continue
        count += 1
        hits += (row >= row[label]).sum() <= top_k
    return hits / count if count else 0.0


@pytest.mark.parametrize('top_k', [1, 2, 5])
def test_top_k_against_reference(top_k):
    gen = np.random.default_rng(4)
    scores = gen.standard_normal((100, 10))
    labels = gen.integers(0, 10, 100).astype(float)
    result, = accuracy('top_k: %d' % top_k, scores, labels)
    assert result.shape == ()
    assert float(result) == pytest.approx(reference(scores, labels, top_k))


def test_ties_count_as_wrong():
    scores = np.array([[1.0, 1.0, 0.0], [0.5, 2.0, 2.0], [3.0, 1.0, 2.0]])
    labels = np.array([0.0, 1.0, 0.0])
    # Row 0 ties for first: wrong at top_k 1, right at 2; row 1 likewise; row 2 is a clean win.
    assert float(accuracy('', scores, labels)[0]) == pytest.approx(1 / 3)
    assert float(accuracy('top_k: 2', scores, labels)[0]) == pytest.approx(1.0)


def test_ignore_label_leaves_the_denominator():
    scores = np.eye(4)
    labels = np.array([0.0, 1.0, 3.0, 3.0])    # rows 2 wrong, 3 right; label 1 ignored
    assert float(accuracy('ignore_label: 1', scores, labels)[0]) == pytest.approx(2 / 3)
    assert float(accuracy('ignore_label: 1', scores[1:2], labels[1:2])[0]) == 0.0


def test_per_class_second_top():
    scores = np.array([[2.0, 1, 0], [2.0, 1, 0], [0.0, 2, 1], [0.0, 2, 1], [1.0, 0, 0]])
    labels = np.array([0.0, 1.0, 1.0, 1.0, 0.0])
    overall, per_class = accuracy('', scores, labels, num_top=2)
    assert float(overall) == pytest.approx(4 / 5)
    np.testing.assert_allclose(per_class, [1.0, 2 / 3, 0.0])   # class 2 absent: 0


def test_axis_with_spatial_labels():
    gen = np.random.default_rng(8)
    scores = gen.standard_normal((2, 3, 4))          # classes along axis 2
    labels = gen.integers(0, 4, (2, 3)).astype(float)
    result, = accuracy('axis: 2', scores, labels)
    assert float(result) == pytest.approx(reference(scores.reshape(6, 4), labels.reshape(6), 1))
    scores = gen.standard_normal((2, 5, 3, 2))      # N, C, H, W with labels N, H, W
    labels = gen.integers(0, 5, (2, 3, 2)).astype(float)
    result, = accuracy('', scores, labels)
    moved = np.moveaxis(scores, 1, -1).reshape(-1, 5)
    assert float(result) == pytest.approx(reference(moved, labels.reshape(-1), 1))


@pytest.mark.parametrize('params, scores, labels, message', [
    ('top_k: 4', np.zeros((2, 3)), np.zeros(2), 'top_k .4. must be less than or equal to the '
                                                'number of classes .3.'),
    ('', np.zeros((2, 3)), np.zeros(3), 'number of labels must match number of predictions'),
    ('', np.zeros((2, 3)), np.array([0.0, 7.0]), r'label 7 out of range \[0, 3\)'),
])
def test_errors(params, scores, labels, message):
    with pytest.raises(NetError, match=message):
        accuracy(params, scores, labels)


def test_no_backward():
    layer, bottom, top = make_layer('type: "Accuracy"', [(2, 3), (2,)],
                                    bottom_data=[np.zeros((2, 3)), np.zeros(2)])
    layer.backward(top, [False, False], bottom)
    with pytest.raises(NetError, match='Accuracy has no backward'):
        layer.backward(top, [True, False], bottom)
