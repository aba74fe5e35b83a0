"""Dropout (cct/layers/dropout.py): in TRAIN, a Bernoulli(1 - ratio) mask and the 1/(1 - ratio)
scaling at train time; identity in TEST; backward reuses the mask; gradients with the checker's
seed reset (Caffe's test_neuron_layer Dropout cases)."""
import numpy as np
import pytest

from cct import rng
from cct.errors import NetError
from cct.proto import caffe_pb2
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


@pytest.mark.parametrize('ratio', [0.5, 0.2, 0.75])
def test_train_scales_the_kept_units(ratio):
    x = np.ones((200, 100))
    layer, bottom, top = make_layer('type: "Dropout" dropout_param { dropout_ratio: %g }' % ratio,
                                    [x.shape], bottom_data=[x], phase=TRAIN)
    rng.set_random_seed(1701)
    layer.forward(bottom, top)
    scale = 1 / (1 - float(np.float32(ratio)))
    values = np.unique(top[0].data)
    np.testing.assert_allclose(values, [0, scale])
    kept = float((top[0].data != 0).mean())
    # 20,000 Bernoulli draws: 5 standard deviations of the kept fraction.
    assert abs(kept - (1 - ratio)) < 5 * np.sqrt(ratio * (1 - ratio) / x.size)
    assert abs(top[0].data.mean() - 1) < 5 * scale * np.sqrt(ratio * (1 - ratio) / x.size)


@pytest.mark.parametrize('ratio', [0.5, 0.3])
def test_train_forward_matches_a_naive_masked_scaling(ratio):
    """On random inputs: every output is 0 or the input times 1/(1 - ratio); the dropped units are
    those of one Bernoulli(1 - ratio) mask, and the seed fixes it."""
    x = np.random.default_rng(5).uniform(0.5, 1.5, (4, 3, 5, 5))
    layer, bottom, top = make_layer('type: "Dropout" dropout_param { dropout_ratio: %g }' % ratio,
                                    [x.shape], bottom_data=[x], phase=TRAIN)
    rng.set_random_seed(3)
    layer.forward(bottom, top)
    kept = top[0].data != 0
    scale = 1 / (1 - float(np.float32(ratio)))
    np.testing.assert_allclose(top[0].data, np.where(kept, x * scale, 0.0), rtol=1e-12)
    assert 0 < kept.sum() < x.size
    rng.set_random_seed(3)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data != 0, kept)


def test_test_phase_is_identity():
    layer, bottom, top = make_layer('type: "Dropout"', [(3, 4)], seed=2, phase=TEST)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, bottom[0].data)
    top[0].diff[...] = 5
    layer.backward(top, [True], bottom)
    assert (bottom[0].diff == 5).all()


def test_backward_uses_the_forward_mask():
    layer, bottom, top = make_layer('type: "Dropout"', [(10, 10)], seed=2, phase=TRAIN,
                                    inplace=False)
    layer.forward(bottom, top)
    kept = top[0].data != 0
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, np.where(kept, 2.0, 0.0))


@pytest.mark.parametrize('phase', [TRAIN, TEST])
@pytest.mark.parametrize('inplace', [False, True])
def test_gradient(phase, inplace):
    layer, bottom, top = make_layer('type: "Dropout" dropout_param { dropout_ratio: 0.3 }',
                                    [(2, 3, 4)], seed=8, phase=phase, inplace=inplace)
    GradientChecker(1e-2, 1e-3).check_eltwise(layer, bottom, top)


def test_same_seed_same_mask():
    masks = []
    for _ in range(2):
        layer, bottom, top = make_layer('type: "Dropout"', [(4, 5)], seed=1, phase=TRAIN)
        rng.set_random_seed(99)
        layer.forward(bottom, top)
        masks.append(top[0].data != 0)
    np.testing.assert_array_equal(masks[0], masks[1])


def test_ratio_zero_keeps_everything_and_one_is_refused():
    layer, bottom, top = make_layer('type: "Dropout" dropout_param { dropout_ratio: 0 }',
                                    [(3, 3)], seed=1, phase=TRAIN)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, bottom[0].data)
    with pytest.raises(NetError, match=r'dropout_ratio must be in \[0, 1\)'):
        make_layer('type: "Dropout" dropout_param { dropout_ratio: 1 }', [(3, 3)])
