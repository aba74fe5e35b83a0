"""Asynchrony begets momentum: the implicit momentum measured on a quadratic and on LeNet, and the
``--momentum-mode auto`` compensation (cct.distributed.momentum)."""
import json

import numpy as np
import pytest

from cct import io as cct_io
from cct.errors import CctError
from cct.proto import caffe_pb2
from cct.distributed import momentum as mom

from grouped_helpers import write_solver


@pytest.mark.parametrize('workers', [1, 2, 4, 8, 16])
def test_quadratic_implicit_momentum_is_one_minus_one_over_m(workers):
    measured, eta = mom.measure_quadratic(workers, runs=2000, seed=0)
    assert abs(measured - (1 - 1 / workers)) < 0.05
    # The theory's effective step is the rate over M (0.02 / M).
    assert eta == pytest.approx(0.02 / workers, rel=0.1)


def test_the_estimator_recovers_a_known_heavy_ball():
    """A deterministic heavy-ball run (m_{t+1} - m_t = 0.6 (m_t - m_{t-1}) - 0.05 g_t) is fitted
    exactly, so the estimator is not biased towards 1 - 1/M."""
    curvature = np.array([0.3, 1.0])
    models = [np.ones(2), np.ones(2)]
    for _ in range(60):
        m, previous = models[-1], models[-2]
        models.append(m + 0.6 * (m - previous) - 0.05 * curvature * m)
    models = np.array(models)
    mu, eta = mom.fit_momentum(models, models * curvature, burn_in=1)
    assert mu == pytest.approx(0.6, abs=1e-9) and eta == pytest.approx(0.05, abs=1e-9)


def test_compensation_keeps_the_total_momentum_and_may_go_negative():
    assert mom.compensated_momentum(0.9, 1) == pytest.approx(0.9)
    assert mom.compensated_momentum(0.9, 4) == pytest.approx(0.15)
    assert mom.compensated_momentum(0.9, 16) == pytest.approx(-0.0375)


def test_set_momentum_mode_logs_the_value_and_refuses_adaptive_solvers(cct_log):
    param = caffe_pb2.SolverParameter(momentum=0.9, type='SGD')
    assert mom.set_momentum_mode(param, 8, 'auto') == pytest.approx(0.025)
    assert param.momentum == pytest.approx(0.025)
    assert 'explicit momentum 0.025 = 0.9 - (1 - 1/8) for 8 compute groups' in cct_log()
    with pytest.raises(CctError, match='solver type Adam'):
        mom.set_momentum_mode(caffe_pb2.SolverParameter(momentum=0.9, type='Adam'), 2, 'auto')
    with pytest.raises(CctError, match='explicit or auto'):
        mom.set_momentum_mode(param, 2, 'sometimes')


def test_compensation_collapses_the_quadratic_loss_curves_where_momentum_overshoots():
    """At rate 0.05, explicit momentum 0.9 on top of asynchrony's 1 - 1/G overshoots (G = 8 runs
    away from G = 1); compensated, every G's curve stays far closer to G = 1's. (At small rates,
    0.01, the uncompensated curves are the closer ones: the theory's step is the rate over G, so
    momentum alone cannot match per-update curves there - the README says so.)"""
    explicit = mom.compensation_spread(mode='explicit', base_lr=0.05)
    auto = mom.compensation_spread(mode='auto', base_lr=0.05)
    assert max(auto.values()) < 0.5 * max(explicit.values())
    assert np.mean(list(auto.values())) < 0.5 * np.mean(list(explicit.values()))


def test_lenet_implicit_momentum_rises_with_the_workers(digits):
    """The paper's CNN experiment, small: LeNet on the digits (batch 16), plain asynchronous SGD
    in the simulator, 4 runs of 2M + 30 updates per M."""
    path = write_solver(digits, 'implicit', batch_size=16, display=0)
    param = cct_io.read_solver_text(path)
    measured = [mom.measure_net(param, path, m, runs=4, base_lr=0.01)[0] for m in (1, 2, 4, 8)]
    assert abs(measured[0]) < 1e-3  # one worker: no staleness, no momentum
    assert all(b > a + 0.03 for a, b in zip(measured, measured[1:])), measured
    assert all(m < 1 - 1 / w + 0.05 for m, w in zip(measured, (1, 2, 4, 8)))


def test_simulate_async_prints_one_json_line_per_m_and_plots(tmp_path, capsys):
    from cct import cli
    plot = tmp_path / 'momentum.png'
    assert cli.main(['simulate-async', '--workers', '1,4', '--runs', '1000', '--json',
                     '--plot', str(plot)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r['workers'] for r in rows] == [1, 4]
    assert all(r['problem'] == 'quadratic' for r in rows)
    assert [r['predicted_momentum'] for r in rows] == [0.0, 0.75]
    assert abs(rows[1]['measured_momentum'] - 0.75) < 0.05
    assert plot.stat().st_size > 1000
    assert cli.main(['simulate-async', '--workers', '1,x']) == 1
    assert 'comma list of integers' in capsys.readouterr().err
