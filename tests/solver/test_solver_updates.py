"""Each solver's update equals Caffe's formula computed by hand, step after step: momentum, L2 and L1
weight decay with decay_mult, lr_mult, clipping, and every learning-rate policy.

The nets run in float64 so the comparison can be tight; the reference below is written from
Caffe's formulas (caffe_surface.md §1c), not from cct's code. SolverParameter's numbers are proto
floats, so the reference rounds them to float32 first, as Caffe reads them.
"""
import math

import numpy as np
import pytest

from cct.errors import SolverError
from cct.solver import (AdaDeltaSolver, AdaGradSolver, AdamSolver, NesterovSolver, RMSPropSolver,
                        SGDSolver)

from conftest import gradients

def f32(value):
    return float(np.float32(value))


MULTS = {'w_lr': 1.0, 'w_decay': 1.0, 'b_lr': 2.0, 'b_decay': 0.5}


def caffe_rate(policy, it, base_lr=f32(0.1), gamma=0.5, power=0.75, stepsize=3, stepvalue=(2, 5),
               max_iter=10):
    """Caffe's GetLearningRate, written out per policy."""
    if policy == 'fixed':
        return base_lr
    if policy == 'step':
        return base_lr * gamma ** (it // stepsize)
    if policy == 'exp':
        return base_lr * gamma ** it
    if policy == 'inv':
        return base_lr * (1 + gamma * it) ** -power
    if policy == 'multistep':
        return base_lr * gamma ** sum(1 for v in stepvalue if it >= v)
    if policy == 'poly':
        return base_lr * (1 - it / max_iter) ** power
    if policy == 'sigmoid':
        return base_lr / (1 + math.exp(-gamma * (it - stepsize)))
    raise AssertionError(policy)


def reference(kind, w, b, steps, rate, momentum=0.9, decay=0.01, reg='L2', delta=1e-8,
              rms_decay=0.95, momentum2=0.999):
    """Run ``steps`` updates of solver ``kind`` by hand; return (w, b, histories)."""
    momentum, decay, delta, rms_decay, momentum2 = (
        f32(v) for v in (momentum, decay, delta, rms_decay, momentum2))
    params = [w.copy(), b.copy()]
    lr_mult, decay_mult = (MULTS['w_lr'], MULTS['b_lr']), (MULTS['w_decay'], MULTS['b_decay'])
    h = [np.zeros_like(p) for p in params]
    h2 = [np.zeros_like(p) for p in params]
    for it in range(steps):
        grads = gradients(*params)
        for i, (p, g) in enumerate(zip(params, grads)):
            local_decay = decay * decay_mult[i]
            g = g + local_decay * (p if reg == 'L2' else np.sign(p))
            a = rate(it) * lr_mult[i]
            if kind == 'SGD':
                h[i] = momentum * h[i] + a * g
                step = h[i]
            elif kind == 'Nesterov':
                previous = h[i]
                h[i] = momentum * h[i] + a * g
                step = (1 + momentum) * h[i] - momentum * previous
            elif kind == 'AdaGrad':
                h[i] = h[i] + g * g
                step = a * g / (np.sqrt(h[i]) + delta)
            elif kind == 'RMSProp':
                h[i] = rms_decay * h[i] + (1 - rms_decay) * g * g
                step = a * g / (np.sqrt(h[i]) + delta)
            elif kind == 'AdaDelta':
                h[i] = momentum * h[i] + (1 - momentum) * g * g
                u = g * np.sqrt((h2[i] + delta) / (h[i] + delta))
                h2[i] = momentum * h2[i] + (1 - momentum) * u * u
                step = a * u
            elif kind == 'Adam':
                t = it + 1
                h[i] = momentum * h[i] + (1 - momentum) * g
                h2[i] = momentum2 * h2[i] + (1 - momentum2) * g * g
                step = a * math.sqrt(1 - momentum2 ** t) / (1 - momentum ** t) * h[i] / (
                    np.sqrt(h2[i]) + delta)
            params[i] = p - step
    return params, h + (h2 if kind in ('AdaDelta', 'Adam') else [])


CASES = [
    (SGDSolver, 'momentum: 0.9', dict(momentum=0.9)),
    (NesterovSolver, 'momentum: 0.9', dict(momentum=0.9)),
    (AdaGradSolver, 'delta: 1e-3', dict(delta=1e-3)),
    (RMSPropSolver, 'rms_decay: 0.95 delta: 1e-4', dict(rms_decay=0.95, delta=1e-4)),
    (AdaDeltaSolver, 'momentum: 0.95 delta: 1e-6', dict(momentum=0.95, delta=1e-6)),
    (AdamSolver, 'momentum: 0.9 momentum2: 0.99 delta: 1e-6',
     dict(momentum=0.9, momentum2=0.99, delta=1e-6)),
]


def run_and_compare(make_solver, cls, text, kwargs, steps=5, policy_text='lr_policy: "fixed"',
                    rate=lambda it: f32(0.1), reg='L2', decay=0.01, dtype=np.float64):
    solver = make_solver(cls, 'base_lr: 0.1 weight_decay: %g regularization_type: "%s" %s %s'
                         % (decay, reg, policy_text, text), dtype=dtype, **MULTS)
    w0, b0 = (p.data.astype(np.float64) for p in solver.net.params['ip'])
    solver.step(steps)
    assert solver.iter == steps
    (w, b), history = reference(cls.type, w0, b0, steps, rate, reg=reg, decay=decay, **kwargs)
    tolerance = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5,
                                                                                atol=1e-6)
    np.testing.assert_allclose(solver.net.params['ip'][0].data, w, **tolerance)
    np.testing.assert_allclose(solver.net.params['ip'][1].data, b, **tolerance)
    assert len(solver.history) == len(history)
    for mine, theirs in zip(solver.history, history):
        np.testing.assert_allclose(mine, theirs, **tolerance)
    return solver


@pytest.mark.parametrize('cls, text, kwargs', CASES, ids=[c[0].type for c in CASES])
@pytest.mark.parametrize('reg', ['L2', 'L1'])
def test_update_rule_matches_caffe_formula(make_solver, cls, text, kwargs, reg):
    run_and_compare(make_solver, cls, text, kwargs, reg=reg)


@pytest.mark.parametrize('cls, text, kwargs', CASES, ids=[c[0].type for c in CASES])
def test_update_rule_in_float32(make_solver, cls, text, kwargs):
    """The float32 path (Caffe's precision) follows the same formula; the tolerance is float32's
    rounding over five steps."""
    run_and_compare(make_solver, cls, text, kwargs, dtype=np.float32)


POLICIES = {
    'fixed': 'lr_policy: "fixed"',
    'step': 'lr_policy: "step" gamma: 0.5 stepsize: 3',
    'exp': 'lr_policy: "exp" gamma: 0.5',
    'inv': 'lr_policy: "inv" gamma: 0.5 power: 0.75',
    'multistep': 'lr_policy: "multistep" gamma: 0.5 stepvalue: 2 stepvalue: 5',
    'poly': 'lr_policy: "poly" power: 0.75 max_iter: 10',
    'sigmoid': 'lr_policy: "sigmoid" gamma: 0.5 stepsize: 3',
}


@pytest.mark.parametrize('policy', sorted(POLICIES))
def test_lr_policy_drives_sgd_updates(make_solver, policy):
    solver = run_and_compare(make_solver, SGDSolver, 'momentum: 0.9', dict(momentum=0.9),
                             steps=7, policy_text=POLICIES[policy],
                             rate=lambda it: caffe_rate(policy, it))
    assert solver.lr == pytest.approx(caffe_rate(policy, 7), rel=1e-12)


def test_multistep_current_step_advances_and_is_kept(make_solver):
    solver = make_solver(SGDSolver, 'base_lr: 1 lr_policy: "multistep" gamma: 0.1 stepvalue: 2 '
                         'stepvalue: 3 stepvalue: 6')
    rates = []
    for _ in range(7):
        rates.append(solver.lr)
        solver.step(1)
    assert solver.current_step == 3
    np.testing.assert_allclose(rates, [1, 1, 0.1, 0.01, 0.01, 0.01, 0.001], rtol=1e-6)


def test_lr_mult_zero_freezes_the_param(make_solver):
    solver = make_solver(SGDSolver, 'base_lr: 0.1 lr_policy: "fixed" momentum: 0.9',
                         w_lr=0, w_decay=1, b_lr=1, b_decay=0)
    w0 = solver.net.params['ip'][0].data.copy()
    b0 = solver.net.params['ip'][1].data.copy()
    solver.step(3)
    np.testing.assert_array_equal(solver.net.params['ip'][0].data, w0)
    assert not np.allclose(solver.net.params['ip'][1].data, b0)


def test_clip_gradients_scales_the_raw_gradient(make_solver):
    solver = make_solver(SGDSolver, 'base_lr: 0.1 lr_policy: "fixed" clip_gradients: 0.01',
                         w_lr=1, w_decay=0, b_lr=1, b_decay=0)
    w0 = solver.net.params['ip'][0].data.copy()
    b0 = solver.net.params['ip'][1].data.copy()
    gw, gb = gradients(w0, b0)
    scale = 0.01 / math.sqrt((gw ** 2).sum() + (gb ** 2).sum())
    assert scale < 1
    solver.step(1)
    scale = f32(0.01) / math.sqrt((gw ** 2).sum() + (gb ** 2).sum())
    np.testing.assert_allclose(solver.net.params['ip'][0].data, w0 - f32(0.1) * scale * gw,
                               rtol=1e-12)
    np.testing.assert_allclose(solver.net.params['ip'][1].data, b0 - f32(0.1) * scale * gb,
                               rtol=1e-12)


def test_clip_gradients_sees_the_accumulated_gradient_before_iter_size_scaling(make_solver,
                                                                             caplog):
    """With iter_size 2 (the same batch twice) the diff holds 2g when Caffe clips: the norm it
    compares is |2g|, and the 1/iter_size normalisation comes after. Clipping the averaged g
    instead would take a step twice as long."""
    solver = make_solver(SGDSolver, 'base_lr: 0.1 lr_policy: "fixed" clip_gradients: 0.01 '
                         'iter_size: 2 display: 1', w_lr=1, w_decay=0, b_lr=1, b_decay=0)
    w0 = solver.net.params['ip'][0].data.copy()
    b0 = solver.net.params['ip'][1].data.copy()
    gw, gb = gradients(w0, b0)
    accumulated_norm = 2 * math.sqrt((gw ** 2).sum() + (gb ** 2).sum())
    scale = f32(0.01) / accumulated_norm
    with caplog.at_level('INFO', logger='cct'):
        solver.step(1)
    np.testing.assert_allclose(solver.net.params['ip'][0].data,
                               w0 - f32(0.1) * (2 * gw * scale) / 2, rtol=1e-12)
    np.testing.assert_allclose(solver.net.params['ip'][1].data,
                               b0 - f32(0.1) * (2 * gb * scale) / 2, rtol=1e-12)
    assert 'Gradient clipping: scaling down gradients (L2 norm %g > 0.01) by scale factor %g' \
        % (accumulated_norm, scale) in caplog.messages


def test_apply_update_uses_the_diffs_and_leaves_iter(make_solver):
    """pycaffe's apply_update: Caffe's ApplyUpdate on whatever the diffs hold; step() (not
    ApplyUpdate) advances iter."""
    solver = make_solver(SGDSolver, 'base_lr: 0.5 lr_policy: "fixed"',
                         w_lr=1, w_decay=0, b_lr=1, b_decay=0)
    w0 = solver.net.params['ip'][0].data.copy()
    solver.net.params['ip'][0].diff[...] = 1.0
    solver.net.params['ip'][1].diff[...] = 0.0
    solver.apply_update()
    assert solver.iter == 0
    np.testing.assert_allclose(solver.net.params['ip'][0].data, w0 - 0.5)


@pytest.mark.parametrize('text, message', [
    ('type: "AdaGrad" momentum: 0.9', 'Momentum cannot be used with AdaGrad'),
    ('type: "RMSProp" momentum: 0.5', 'Momentum cannot be used with RMSProp'),
    ('type: "RMSProp" rms_decay: 1.0', 'rms_decay should lie between 0 and 1'),
])
def test_adaptive_solvers_reject_caffe_forbidden_settings(make_solver, text, message):
    from cct.solver import solver_class
    from conftest import solver_param
    param = solver_param('base_lr: 0.1 lr_policy: "fixed" ' + text)
    with pytest.raises(SolverError, match=message):
        solver_class(param.type)(param)


@pytest.mark.parametrize('text, message', [
    ('lr_policy: "cosine"', "Unknown learning rate policy: 'cosine'"),
    ('lr_policy: "step" gamma: 0.1', "'step' needs stepsize > 0"),
    ('lr_policy: "fixed" weight_decay: 0.1 regularization_type: "L3"',
     "Unknown regularization type: 'L3'"),
])
def test_bad_policy_or_regularization_fails_clearly(make_solver, text, message):
    solver = make_solver(SGDSolver, 'base_lr: 0.1 ' + text)
    with pytest.raises(SolverError, match=message):
        solver.step(1)
