"""Accelerator (OpenCL; CUDA where a GPU is) neuron, dropout, softmax and RNG primitives against the
CPU device and numpy."""
import numpy as np
import pytest

from cct.devices.base import UNARY_OPS
from cct.errors import DeviceError
from opencl_support import DTYPES, assert_close

SCALARS = {'relu': {'slope': 0.1}, 'elu': {'alpha': 0.7}, 'threshold': {'threshold': 0.2},
           'clip': {'low': -0.5, 'high': 0.8}, 'exp': {'base': 2.0, 'scale': 0.5, 'shift': 0.25},
           'log': {'base': 3.0, 'scale': 1.5, 'shift': 4.0},
           'power': {'power': 3.0, 'scale': 0.5, 'shift': 1.5}}


def _values(dtype, seed=0):
    values = np.random.default_rng(seed).standard_normal(500).astype(dtype) * 3
    values[:3] = 0   # ReLU's and abs's kink, Caffe's rule at exactly 0
    return values


def _reference_forward(op, x, s):
    x = x.astype(np.float64)
    if op == 'exp':
        return s['base'] ** (s['shift'] + s['scale'] * x)
    if op == 'log':
        return np.log(s['shift'] + s['scale'] * x) / np.log(s['base'])
    if op == 'power':
        return (s['shift'] + s['scale'] * x) ** s['power']
    raise AssertionError(op)


def _reference_backward(op, x, dy, s):
    x = x.astype(np.float64)
    if op == 'exp':
        return dy * s['base'] ** (s['shift'] + s['scale'] * x) * np.log(s['base']) * s['scale']
    if op == 'log':
        return dy * s['scale'] / ((s['shift'] + s['scale'] * x) * np.log(s['base']))
    if op == 'power':
        return dy * s['power'] * s['scale'] * (s['shift'] + s['scale'] * x) ** (s['power'] - 1)
    raise AssertionError(op)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('op', sorted(UNARY_OPS))
def test_unary_forward_and_backward(accel, cpu, dtype, op):
    assert accel.supports('unary', op)
    s = SCALARS.get(op, {})
    x = _values(dtype)
    if op == 'log':
        x = np.abs(x)   # inside log's domain (shift + scale*x > 0)
    dy = _values(dtype, 1)
    device_y = accel.empty(x.shape, dtype)
    accel.unary(op, accel.from_host(x), device_y, **s)
    if cpu.supports('unary', op):
        y = np.empty_like(x)
        cpu.unary(op, x, y, **s)
    else:
        y = _reference_forward(op, x, s)
    assert_close(accel.to_host(device_y), y, dtype)
    if op == 'threshold':
        with pytest.raises(DeviceError, match='threshold'):
            accel.unary_backward(op, accel.from_host(x), device_y, accel.from_host(dy), device_y, **s)
        return
    device_dx = accel.from_host(dy)   # in place over dy, which the interface allows
    accel.unary_backward(op, accel.from_host(x), accel.from_host(y.astype(dtype)), device_dx, device_dx,
                       **s)
    if cpu.supports('unary_backward', op):
        dx = np.empty_like(x)
        cpu.unary_backward(op, x, y.astype(dtype), dy, dx, **s)
    else:
        dx = _reference_backward(op, x, dy, s)
    assert_close(accel.to_host(device_dx), dx, dtype)


def test_unary_missing_scalar_is_an_error(accel):
    x = accel.zeros(4, np.float32)
    with pytest.raises(DeviceError, match='slope'):
        accel.unary('relu', x, x)


def test_dropout_mask_and_masked_scale(accel):
    mask = accel.empty(100000, np.uint8)
    accel.seed(7)
    accel.dropout_mask(mask, 0.3)
    kept = accel.to_host(mask)
    assert set(np.unique(kept)) == {0, 1}
    # Bernoulli(0.7) over 1e5 draws: the mean is within 5 standard deviations (0.0072) of 0.7.
    assert abs(kept.mean() - 0.7) < 0.0075
    x = np.random.default_rng(2).standard_normal(100000).astype(np.float32)
    out = accel.empty(x.shape, np.float32)
    accel.masked_scale(accel.from_host(x), mask, out, 1 / 0.7)
    assert_close(accel.to_host(out), x * kept * np.float32(1 / 0.7))


@pytest.mark.parametrize('dtype', DTYPES)
def test_softmax_family_matches_cpu(accel, cpu, dtype):
    outer, channels, inner = 3, 7, 5
    x = (np.random.default_rng(3).standard_normal((outer, channels, inner)) * 5).astype(dtype)
    prob = np.empty_like(x)
    cpu.softmax(x, prob, outer, channels, inner)
    device_prob = accel.empty(x.shape, dtype)
    accel.softmax(accel.from_host(x), device_prob, outer, channels, inner)
    assert_close(accel.to_host(device_prob), prob)
    dy = np.random.default_rng(4).standard_normal(x.shape).astype(dtype)
    dx = np.empty_like(x)
    cpu.softmax_backward(prob, dy, dx, outer, channels, inner)
    device_dx = accel.from_host(dy)
    accel.softmax_backward(accel.from_host(prob), device_dx, device_dx, outer, channels, inner)
    assert_close(accel.to_host(device_dx), dx)
    labels = np.random.default_rng(5).integers(0, channels, (outer, inner)).astype(dtype)
    labels[0, 0] = 4
    prob[1, 2, 3] = 0   # the FLT_MIN floor before the log
    labels[1, 3] = 2
    for ignore in (None, 4):
        loss, count = cpu.softmax_loss(prob, labels, outer, channels, inner, ignore)
        device_loss, device_count = accel.softmax_loss(accel.from_host(prob), accel.from_host(labels),
                                                     outer, channels, inner, ignore)
        assert type(device_loss) is np.dtype(dtype).type and type(device_count) is int
        assert device_count == count == (outer * inner if ignore is None else
                                         int(np.count_nonzero(labels != ignore)))
        assert_close(device_loss, loss, dtype, scale=abs(float(loss)))
        grad = np.empty_like(prob)
        cpu.softmax_loss_backward(prob, labels, grad, outer, channels, inner, ignore)
        device_grad = accel.empty(prob.shape, dtype)
        accel.softmax_loss_backward(accel.from_host(prob), accel.from_host(labels), device_grad, outer,
                                  channels, inner, ignore)
        assert_close(accel.to_host(device_grad), grad)


@pytest.mark.parametrize('dtype', DTYPES)
def test_rng_distributions_and_seeding(accel, dtype):
    n = 200000
    out = accel.empty(n, dtype)
    accel.seed(1234)
    accel.rng_uniform(out, -2.0, 3.0)
    first = accel.to_host(out)
    assert first.min() >= -2 and first.max() < 3
    # U(-2, 3): mean 0.5, sd 5/sqrt(12) = 1.443; 5 standard errors of the mean and of the variance.
    assert abs(first.mean() - 0.5) < 5 * 1.443 / np.sqrt(n)
    assert abs(first.var() - 25 / 12) < 5 * np.sqrt(4 / 5 * (25 / 12) ** 2 / n) + 1e-3
    histogram = np.histogram(first, bins=10, range=(-2, 3))[0]
    assert np.all(np.abs(histogram - n / 10) < 5 * np.sqrt(n / 10))
    accel.rng_uniform(out, -2.0, 3.0)
    assert not np.array_equal(accel.to_host(out), first)   # the stream moves on
    accel.seed(1234)
    accel.rng_uniform(out, -2.0, 3.0)
    np.testing.assert_array_equal(accel.to_host(out), first)   # and restarts with the seed
    accel.rng_gaussian(out, 1.5, 2.0)
    normal = accel.to_host(out).astype(np.float64)
    assert abs(normal.mean() - 1.5) < 5 * 2 / np.sqrt(n)
    assert abs(normal.std() - 2.0) < 5 * 2 / np.sqrt(2 * n)
    standard = (normal - 1.5) / 2
    # Tails of N(0, 1): P(|z| > 2) = 0.0455, P(|z| > 3) = 0.0027.
    assert abs(np.mean(np.abs(standard) > 2) - 0.0455) < 0.003
    assert abs(np.mean(np.abs(standard) > 3) - 0.0027) < 0.0008
    assert abs(np.mean(standard ** 3)) < 0.03


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('channels', [3, 1])   # per-channel slopes, one shared slope
def test_prelu_matches_cpu(accel, cpu, dtype, channels):
    x = _values(dtype)[:2 * 3 * 20].reshape(2, 3, 20)
    slopes = np.array([0.25, -0.5, 1.5][:channels], dtype)
    inner = 20
    y = np.empty_like(x)
    cpu.prelu(x, slopes, y, inner)
    device_y = accel.from_host(x)
    accel.prelu(device_y, accel.from_host(slopes), device_y, inner)   # in place
    assert_close(accel.to_host(device_y), y)
    dy = _values(dtype, 5)[:x.size].reshape(x.shape)
    dx, slope_diff = np.empty_like(x), np.ones(channels, dtype)
    cpu.prelu_backward(x, slopes, dy, dx, slope_diff, inner)
    device_dx, device_slope_diff = accel.from_host(dy), accel.from_host(np.ones(channels, dtype))
    accel.prelu_backward(accel.from_host(x), accel.from_host(slopes), device_dx, device_dx,
                       device_slope_diff, inner)   # dx over dy
    assert_close(accel.to_host(device_dx), dx)
    assert_close(accel.to_host(device_slope_diff), slope_diff)
    accel.prelu_backward(accel.from_host(x), accel.from_host(slopes), accel.from_host(dy), None, None,
                       inner)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('ignore', [None, 1])
def test_sigmoid_cross_entropy_matches_cpu(accel, cpu, dtype, ignore):
    x = _values(dtype)[:60] * 4
    target = np.random.default_rng(6).integers(0, 2, 60).astype(dtype)
    target[:5] = 1 if ignore is None else [1, 1, 0, 1, 0]
    sigmoid, valid = np.empty_like(x), np.full(60, -3, np.int32)
    loss, count = cpu.sigmoid_cross_entropy(x, target, sigmoid, valid, ignore)
    device_sigmoid, device_valid = accel.empty(60, dtype), accel.from_host(np.full(60, -3, np.int32))
    device_loss, device_count = accel.sigmoid_cross_entropy(
        accel.from_host(x), accel.from_host(target), device_sigmoid, device_valid, ignore)
    assert type(device_loss) is np.dtype(dtype).type and device_count == count
    assert_close(device_loss, loss, dtype, scale=abs(float(loss)))
    assert_close(accel.to_host(device_sigmoid), sigmoid)
    np.testing.assert_array_equal(accel.to_host(device_valid), valid)   # untouched without ignore
