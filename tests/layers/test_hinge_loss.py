"""HingeLoss (cct/layers/hinge_loss.py): L1 and L2 one-vs-all hinge values against a naive loop, and
gradient checks (Caffe's test_hinge_loss_layer, which also keeps the scores off the hinge)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker


def hinge(norm, num=6, classes=5):
    gen = np.random.default_rng(37)
    scores = gen.standard_normal((num, classes, 1, 1)) * 2
    labels = gen.integers(0, classes, (num,)).astype(float)
    return make_layer('type: "HingeLoss" hinge_loss_param { norm: %s }' % norm,
                      [scores.shape, labels.shape], bottom_data=[scores, labels])


@pytest.mark.parametrize('norm', ['L1', 'L2'])
def test_forward_and_gradient(norm):
    layer, bottom, top = hinge(norm)
    layer.forward(bottom, top)
    scores = bottom[0].data.reshape(6, 5)
    loss = 0.0
    for i in range(6):
        for k in range(5):
            delta = -1.0 if k == int(bottom[1].data[i]) else 1.0
            margin = max(0.0, 1.0 + delta * scores[i, k])
            loss += margin if norm == 'L1' else margin ** 2
    assert top[0].data == pytest.approx(loss / 6, rel=1e-12)
    # Caffe's thresholds; margins exactly at the hinge are skipped like a kink.
    GradientChecker(1e-2, 2e-3, 1701, 1, 0.01).check(layer, bottom, top, check_bottom=0)


def test_errors():
    layer, bottom, top = hinge('L1')
    with pytest.raises(NetError, match='label inputs'):
        layer.backward(top, [True, True], bottom)
    bottom[1].data[0] = 5
    with pytest.raises(NetError, match='out of range'):
        layer.forward(bottom, top)
