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


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('rate', [0.05, 0.08])
def test_compensation_collapses_the_quadratic_loss_curves_where_momentum_matters(rate, seed):
    """Where the step is large enough for momentum to shape the curve (rates 0.05, 0.08: explicit
    momentum 0.9 on top of asynchrony's 1 - 1/G overshoots, G = 8 runs away from G = 1),
    compensated curves of G = 2, 4, 8 stay far closer to G = 1's, for every seed (500 runs
    each)."""
    explicit = mom.compensation_spread(mode='explicit', base_lr=rate, seed=seed)
    auto = mom.compensation_spread(mode='auto', base_lr=rate, seed=seed)
    assert max(auto.values()) < 0.25 * max(explicit.values())
    assert np.mean(list(auto.values())) < 0.5 * np.mean(list(explicit.values()))


def test_at_small_rates_asynchrony_is_only_a_delay_and_compensation_slows_the_curves():
    """The theory's limit, measured (README): the expected recursion of G groups with explicit
    momentum m is D_t = (m + q) D_{t-1} - m q D_{t-2} - (rate/G) grad (q = 1 - 1/G), two
    low-pass filters in series, so the total momentum is m + q only to first order. Its
    long-run step, rate / (G (1 - m)(1 - q)) = rate / (1 - m), does not depend on G: at small
    rates the uncompensated curves already coincide, and compensating (m = 0.9 - q, a step of
    rate / (1 - m) about 10 times smaller for G = 8) slows them."""
    explicit = mom.compensation_spread(mode='explicit', base_lr=0.005)
    auto = mom.compensation_spread(mode='auto', base_lr=0.005)
    assert max(explicit.values()) < 0.25
    assert min(auto.values()) > 10 * max(explicit.values())


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
