"""STOCHASTIC pooling (cct/layers/pooling.py, cct/kernels/stochastic_pooling.pyx): Caffe's GPU semantics
on the CPU. TEST output against sum(x^2)/sum(x); TRAIN samples are window elements drawn with
probability proportional to the activation (a fixed-seed frequency test); gradients reach only the
sampled positions; gradient checks in both phases; padding refused."""
import numpy as np
import pytest

from cct import rng
from cct.errors import NetError
from cct.proto import caffe_pb2
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST
SHAPE = (2, 3, 6, 5)  # Caffe's test_stochastic_pooling blob, pooled with kernel 3, stride 2


def stochastic_layer(values, phase, params='kernel_size: 3 stride: 2', dtype=np.float64):
    return make_layer('type: "Pooling" pooling_param { pool: STOCHASTIC %s }' % params,
                      [values.shape], bottom_data=[values], phase=phase, dtype=dtype)


def windows(height, width, out_h, out_w, kernel, stride):
    """(ph, pw, rows, cols) of every pooling window, clipped to the image as Caffe does."""
    for ph in range(out_h):
        for pw in range(out_w):
            yield (ph, pw, slice(ph * stride, min(ph * stride + kernel, height)),
                   slice(pw * stride, min(pw * stride + kernel, width)))


def uniform_input(seed, shape=SHAPE):
    return np.random.default_rng(seed).uniform(0.0, 1.0, shape)


def test_test_phase_is_the_probability_weighted_average():
    values = uniform_input(1)
    values[0, 0, :3, :3] = 0.0  # a window with no mass outputs 0 (Caffe: cumsum > 0 ? ... : 0)
    layer, bottom, top = stochastic_layer(values, TEST)
    layer.forward(bottom, top)
    assert top[0].shape == (2, 3, 3, 2)  # CEIL rounding keeps the clipped last row of windows
    expected = np.zeros(top[0].shape)
    for ph, pw, rows, cols in windows(6, 5, 3, 2, 3, 2):
        window = values[:, :, rows, cols]
        total = window.sum(axis=(2, 3))
        squares = (window ** 2).sum(axis=(2, 3))
        expected[:, :, ph, pw] = np.where(total > 0, squares / np.where(total > 0, total, 1), 0)
    assert expected[0, 0, 0, 0] == 0.0
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-12)


def test_train_outputs_are_elements_of_their_window():
    values = uniform_input(2)
    layer, bottom, top = stochastic_layer(values, TRAIN)
    rng.set_random_seed(1701)
    layer.forward(bottom, top)
    for ph, pw, rows, cols in windows(6, 5, 3, 2, 3, 2):
        for n in range(2):
            for c in range(3):
                assert top[0].data[n, c, ph, pw] in values[n, c, rows, cols]


def test_train_frequencies_follow_the_activations():
    # 6000 identical 2x2 windows with activations 0, 1, 3, 6: probabilities 0, 0.1, 0.3, 0.6.
    plane = np.array([[0.0, 1.0], [3.0, 6.0]])
    values = np.broadcast_to(plane, (1500, 4, 2, 2)).copy()
    layer, bottom, top = stochastic_layer(values, TRAIN, 'kernel_size: 2 stride: 2')
    rng.set_random_seed(20240601)
    layer.forward(bottom, top)
    picks = top[0].data.ravel()
    counts = np.array([(picks == v).sum() for v in (0.0, 1.0, 3.0, 6.0)])
    assert counts.sum() == picks.size
    assert counts[0] == 0  # a zero activation is never drawn from a window with positive mass
    expected = picks.size * np.array([0.1, 0.3, 0.6])
    chi_square = float(((counts[1:] - expected) ** 2 / expected).sum())
    assert chi_square < 13.82  # the 99.9% quantile of chi-square with 2 degrees of freedom


def test_sampling_follows_the_seed():
    values = uniform_input(3, (4, 4, 6, 6))
    layer, bottom, top = stochastic_layer(values, TRAIN)
    outputs = []
    for seed in (5, 5, 6):
        rng.set_random_seed(seed)
        layer.forward(bottom, top)
        outputs.append(top[0].data.copy())
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert (outputs[0] != outputs[2]).any()


@pytest.mark.parametrize('params, kernel, stride', [('kernel_size: 2 stride: 2', 2, 2),
                                                    ('kernel_size: 3 stride: 2', 3, 2)])
def test_train_gradient_reaches_only_the_sampled_positions(params, kernel, stride):
    values = uniform_input(4)  # continuous values: each sampled value sits at one position
    layer, bottom, top = stochastic_layer(values, TRAIN, params)
    rng.set_random_seed(7)
    layer.forward(bottom, top)
    top[0].diff[...] = np.random.default_rng(8).standard_normal(top[0].shape)
    layer.backward(top, [True], bottom)
    expected = np.zeros(SHAPE)
    out_h, out_w = top[0].shape[2:]
    for ph, pw, rows, cols in windows(6, 5, out_h, out_w, kernel, stride):
        for n in range(2):
            for c in range(3):
                window = values[n, c, rows, cols]
                h, w = np.argwhere(window == top[0].data[n, c, ph, pw])[0]
                expected[n, c, rows.start + h, cols.start + w] += top[0].diff[n, c, ph, pw]
    np.testing.assert_allclose(bottom[0].diff, expected, rtol=1e-12)
    assert np.count_nonzero(bottom[0].diff) <= top[0].count


@pytest.mark.parametrize('phase', [TRAIN, TEST])
def test_gradient_check(phase):
    # Caffe's TestGradient settings: stepsize 1e-4, threshold 1e-2. In TRAIN the checker reseeds
    # before every forward, so each evaluation samples the same positions.
    values = uniform_input(5, (1, 2, 6, 5)) + 0.05
    layer, bottom, top = stochastic_layer(values, phase)
    GradientChecker(1e-4, 1e-2).check(layer, bottom, top)


def test_empty_windows_output_zero_and_take_no_gradient():
    # kernel 1 < stride 3 on 5 pixels: CEIL rounding makes a third window start past the image.
    values = uniform_input(6, (1, 1, 5, 5))
    for phase in (TRAIN, TEST):
        layer, bottom, top = stochastic_layer(values, phase, 'kernel_size: 1 stride: 3')
        layer.forward(bottom, top)
        assert top[0].shape == (1, 1, 3, 3)
        # One-pixel windows: the sample and x^2/x are both the pixel (the latter up to rounding).
        np.testing.assert_allclose(top[0].data[0, 0, :2, :2], values[0, 0, :4:3, :4:3], rtol=1e-15)
        assert not top[0].data[0, 0, 2].any() and not top[0].data[0, 0, :, 2].any()
        top[0].diff[...] = 1.0
        layer.backward(top, [True], bottom)
        np.testing.assert_allclose(bottom[0].diff[0, 0, :4:3, :4:3], 1.0, rtol=1e-12)
        assert np.count_nonzero(bottom[0].diff) == 4


def test_float32_test_phase():
    values = uniform_input(7)
    layer64, bottom64, top64 = stochastic_layer(values, TEST)
    layer32, bottom32, top32 = stochastic_layer(values, TEST, dtype=np.float32)
    layer64.forward(bottom64, top64)
    layer32.forward(bottom32, top32)
    np.testing.assert_allclose(top32[0].data, top64[0].data, rtol=1e-5)


@pytest.mark.parametrize('params, message', [
    ('kernel_size: 3 pad: 1', 'padding implemented only for average and max pooling'),
    ('kernel_size: 3 pad_h: 1 pad_w: 0', 'padding implemented only'),
])
def test_padding_is_refused(params, message):
    with pytest.raises(NetError, match=message):
        stochastic_layer(uniform_input(8), TRAIN, params)
    with pytest.raises(NetError, match='only produced by MAX'):
        make_layer('type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 2 }', [SHAPE],
                   num_top=2)
