"""Accelerator (OpenCL; CUDA where a GPU is) solver updates (the fused SGD step, regularisation, the
five adaptive rules) against the CPU device, several steps in a row so the histories carry errors
forward if any."""
import numpy as np
import pytest

from cct.errors import DeviceError
from opencl_support import DTYPES, assert_close


def _random(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('normalize,decay,l1', [(1.0, 0.0, False), (0.5, 5e-4, False),
                                                (1.0, 1e-3, True)])
def test_sgd_update_matches_cpu(accel, cpu, dtype, normalize, decay, l1):
    data, history = _random(300, dtype, 1), _random(300, dtype, 2)
    data[:2] = 0   # sign(0) = 0 for L1
    device = [accel.from_host(a) for a in (data, history)]
    device_diff = accel.empty(300, dtype)
    for step in range(3):
        diff = _random(300, dtype, 10 + step)
        accel.from_host(diff, out=device_diff)
        cpu.sgd_update(data, diff, history, normalize, decay, l1, 0.01 * (step + 1), 0.9)
        accel.sgd_update(device[0], device_diff, device[1], normalize, decay, l1,
                       0.01 * (step + 1), 0.9)
    assert_close(accel.to_host(device[0]), data)
    assert_close(accel.to_host(device_diff), diff)
    assert_close(accel.to_host(device[1]), history)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('l1', [False, True])
def test_regularize_matches_cpu(accel, cpu, dtype, l1):
    data, diff = _random(100, dtype, 3), _random(100, dtype, 4)
    data[0] = 0
    device_diff = accel.from_host(diff)
    cpu.regularize(data, diff, 5e-3, l1)
    accel.regularize(accel.from_host(data), device_diff, 5e-3, l1)
    assert_close(accel.to_host(device_diff), diff)


RULES = {'momentum': dict(momentum=0.9), 'nesterov': dict(momentum=0.9),
         'adagrad': dict(momentum=0.0),
         'rmsprop': dict(momentum=0.98), 'adadelta': dict(momentum=0.95),
         'adam': dict(momentum=0.9, momentum2=0.999)}


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('rule', sorted(RULES))
def test_adaptive_updates_match_cpu(accel, cpu, dtype, rule):
    two = rule in ('adadelta', 'adam')
    history = np.abs(_random(200, dtype, 5)) if rule in ('adagrad', 'rmsprop', 'adadelta') else \
        _random(200, dtype, 5)
    history2 = np.abs(_random(200, dtype, 6)) if two else None
    device_history = accel.from_host(history)
    device_history2 = accel.from_host(history2) if two else None
    device_diff = accel.empty(200, dtype)
    settings = dict(RULES[rule])
    settings.setdefault('momentum2', 0.0)
    for step in range(3):
        diff = _random(200, dtype, 20 + step)
        accel.from_host(diff, out=device_diff)
        correction = np.sqrt(1 - 0.999 ** (step + 1)) / (1 - 0.9 ** (step + 1))
        cpu.adaptive_update(rule, diff, history, history2, 0.01, delta=1e-8,
                            correction=correction, **settings)
        accel.adaptive_update(rule, device_diff, device_history, device_history2, 0.01, delta=1e-8,
                            correction=correction, **settings)
        assert np.all(np.isfinite(diff))
        assert_close(accel.to_host(device_diff), diff, scale=max(1e-2, np.abs(diff).max()))
    assert_close(accel.to_host(device_history), history)
    if two:
        assert_close(accel.to_host(device_history2), history2)


def test_unknown_rule_and_missing_history_are_errors(accel):
    x = accel.zeros(3, np.float32)
    with pytest.raises(DeviceError, match='unknown update rule'):
        accel.adaptive_update('adamax', x, x, None, 0.1, 0.9, 0.99, 1e-8)
    with pytest.raises(DeviceError, match='second history'):
        accel.adaptive_update('adam', x, x, None, 0.1, 0.9, 0.99, 1e-8)
