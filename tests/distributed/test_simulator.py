"""The cluster simulator: cluster descriptions, one group equals plain training, the simulated
clock and staleness, divergence, and ``cct simulate --json``."""
import json
import os

import numpy as np
import pytest

from cct import cli
from cct import io as cct_io
from cct import runtime
from cct.errors import CctError
from cct.solver import get_solver
from cct.distributed.cluster_spec import ClusterSpec, load_cluster
from cct.distributed.simulator import Simulation, quiet, simulate, trial_length

from grouped_helpers import write_solver

CLUSTERS = os.path.join(os.path.dirname(__file__), '..', '..', 'examples', 'clusters')


@pytest.fixture(autouse=True)
def _single_process_rank():
    yield
    runtime.set_solver_count(1)
    runtime.set_solver_rank(0)


def cluster(count=4, rate=1000.0, jitter='none', server=0.0, gbps=1.0, latency_ms=0.0):
    return ClusterSpec({'machines': [{'name': 'm', 'count': count, 'images_per_second': rate}],
                        'network': {'gbps': gbps, 'latency_ms': latency_ms},
                        'server': {'seconds_per_update': server}, 'jitter': jitter}, 'test.json')


@pytest.mark.parametrize('name', ['laptop', 'omnivore_cpu', 'gpu8'])
def test_shipped_clusters_load(name):
    spec = load_cluster(os.path.join(CLUSTERS, name + '.json'))
    assert spec.machine_count == {'laptop': 2, 'omnivore_cpu': 32, 'gpu8': 8}[name]
    assert spec.group_counts()[0] == 1 and spec.group_counts()[-1] == spec.machine_count


def test_group_time_is_the_slowest_machine_share_plus_the_transfer():
    spec = ClusterSpec({'machines': [{'count': 3, 'images_per_second': 100},
                                     {'count': 1, 'images_per_second': 50}],
                        'network': {'gbps': 8, 'latency_ms': 1}}, 'mixed.json')
    # Two groups of two: group 1 holds the slow machine; 64 / 2 = 32 images each.
    assert spec.compute_seconds(2, 0, 64) == pytest.approx(32 / 100)
    assert spec.compute_seconds(2, 1, 64) == pytest.approx(32 / 50)
    # 1 MB down and up at 8 Gbit/s = 2 ms, plus two latencies.
    assert spec.transfer_seconds(1e6) == pytest.approx(0.002 + 0.002)
    with pytest.raises(CctError, match='5 compute groups need at least 5 machines'):
        spec.check_groups(5)


@pytest.mark.parametrize('data, message', [
    ({'machines': [], 'network': {'gbps': 1}}, '"machines" must be a non-empty list'),
    ({'machines': [{'count': 2}], 'network': {'gbps': 1}}, 'machines\\[0\\]: "images_per_second"'),
    ({'machines': [{'images_per_second': 5}]}, '"network" must be an object'),
    ({'machines': [{'images_per_second': 5}], 'network': {'gbps': 1}, 'jitter': 'gauss'},
     '"jitter" must be'),
    ({'machines': [{'images_per_second': 5}], 'network': {'gbps': 1}, 'nodes': 3},
     'unknown key nodes'),
])
def test_bad_cluster_descriptions_name_the_key(data, message):
    with pytest.raises(CctError, match=message):
        ClusterSpec(data, 'bad.json')


def test_bad_json_names_file_and_line(tmp_path):
    path = tmp_path / 'c.json'
    path.write_text('{"machines": [\n  {"count": 2,}\n]}')
    with pytest.raises(CctError, match=r'c.json:2: not valid JSON'):
        load_cluster(str(path))


def test_one_group_is_plain_training_on_a_simulated_clock(digits):
    path = write_solver(digits, 'sim1', max_iter=20, test_interval=10)
    plain = get_solver(path)
    plain.solve()
    spec = cluster(count=2, rate=640.0, server=0.01, gbps=8.0)
    simulation = Simulation(cct_io.read_solver_text(path), path, spec, 1)
    result = simulation.run()
    for a, b in zip(plain.net.learnable_params, simulation.server.solver.net.learnable_params):
        np.testing.assert_array_equal(a.data, b.data)
    # 32 images per machine at 640/s, LeNet's 431080 float params down and up at 8 Gbit/s, and
    # the server's 10 ms: the same every update without jitter.
    per_update = 32 / 640 + 2 * 431080 * 4 * 8 / 8e9 + 0.01
    assert result.seconds_per_iteration == pytest.approx(per_update)
    assert result.staleness == {0: 20}
    assert [(i, round(s, 9)) for i, s, _, _ in result.tests] == \
        [(0, 0.0), (10, round(10 * per_update, 9)), (20, round(20 * per_update, 9))]


def test_staleness_follows_the_compute_times(digits):
    path = write_solver(digits, 'stale', batch_size=4, max_iter=160, test_interval=0,
                        base_lr=0.001, momentum=0)
    param = cct_io.read_solver_text(path)
    param.ClearField('test_iter')
    param.ClearField('test_net')
    # Equal times without jitter: a round robin, so every update after the first round missed
    # the other three groups' updates.
    fixed = simulate(param, path, cluster(count=4, jitter='none'), 4)
    assert set(fixed.staleness) == {0, 1, 2, 3} and fixed.staleness[3] == 160 - 3
    # Memoryless times: staleness spreads out with mean M - 1 (geometric, q = 1 - 1/M).
    spread = simulate(param, path, cluster(count=4, jitter='exponential', gbps=1e6), 4, seed=3)
    mean = sum(k * v for k, v in spread.staleness.items()) / 160
    assert max(spread.staleness) > 6 and 2.3 < mean < 3.7


def test_auto_momentum_divergence_and_the_json_line(digits, capsys, tmp_path):
    path = write_solver(digits, 'simjson', max_iter=60, test_interval=20, display=0)
    spec_path = os.path.join(CLUSTERS, 'laptop.json')
    plot = tmp_path / 'simulation.png'
    assert cli.main(['simulate', '--solver', path, '--cluster', spec_path, '--groups', '2',
                     '--momentum-mode', 'auto', '--target-accuracy', '0.5', '--json',
                     '--plot', str(plot)]) == 0
    assert plot.stat().st_size > 1000
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record['groups'] == 2 and record['momentum'] == pytest.approx(0.4)
    assert record['base_lr'] == pytest.approx(0.01)
    assert record['iterations_to_target'] in (20, 40, 60)
    assert len(record['train_losses']) == record['iterations_to_target']
    assert record['tests'][-1]['accuracy'] >= 0.5
    assert sum(record['staleness_histogram'].values()) == record['iterations_to_target']
    assert record['time_to_target_s'] == pytest.approx(
        record['seconds_per_iteration'] * record['iterations_to_target'])
    assert cli.main(['simulate', '--solver', path, '--cluster', spec_path, '--groups', '2',
                     '--base-lr', '50', '--target-accuracy', '0.97', '--json']) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record['diverged'] and record['time_to_target_s'] is None
    assert record['iterations_to_target'] is None
    assert cli.main(['simulate', '--solver', path, '--cluster', spec_path,
                     '--groups', '3']) == 1
    assert 'need at least 3 machines' in capsys.readouterr().err


def test_a_non_finite_model_is_divergence_not_a_reached_target(digits):
    """An update that makes the weights NaN shows in the next test before any gradient: Caffe's
    Accuracy scores NaN outputs as correct (1.0), which must not count as the target."""
    path = write_solver(digits, 'nan', max_iter=50, test_interval=1, display=0, base_lr=1e8,
                        lr_policy='"fixed"')
    with quiet():
        result = simulate(cct_io.read_solver_text(path), path, cluster(count=2), 1,
                          target_accuracy=0.5)
    assert result.diverged
    assert result.iterations_to_target is None and result.time_to_target_s is None
    assert all(np.isfinite(loss) for _, _, _, loss in result.tests)


def test_points_of_one_grid_see_the_same_batches_and_compute_times(digits):
    """Common random numbers: two trials of one grid (one start, one seed, any momentum and
    rate) apply their gradients at the same simulated times, and their first G gradients, on
    the common start, have the same losses (the same batches), so their scores compare."""
    path = write_solver(digits, 'crn', batch_size=16, display=0, max_iter=200)
    param = cct_io.read_solver_text(path)
    spec = cluster(count=4, jitter='exponential')
    with quiet():
        runs = [simulate(param, path, spec, 4, momentum=m, base_lr=r, seed=3, max_iter=12,
                         min_fresh=8) for m, r in ((0.0, 0.01), (0.9, 0.001))]
    assert [s for _, s, _ in runs[0].losses] == [s for _, s, _ in runs[1].losses]
    assert runs[0].start_losses == runs[1].start_losses and len(runs[0].start_losses) == 4
    assert runs[0].fresh_losses != runs[1].fresh_losses
    # A trial lasts at least TRIAL_UPDATES, and TRIAL_ROUNDS per group, updates on models it
    # updated.
    assert trial_length(1) == 3 and trial_length(32) == 32 and trial_length(4, 5, 2) == 8


def test_a_trial_runs_past_its_seconds_until_it_has_fresh_gradients(digits):
    """An optimizer's trial of G groups first applies G gradients of its starting model; with
    min_fresh it goes on past max_seconds until that many gradients of models it updated were
    applied, scores only those, and measures HE over whole rounds of G updates."""
    path = write_solver(digits, 'fresh', batch_size=16, display=0, max_iter=200)
    param = cct_io.read_solver_text(path)
    spec = cluster(count=4, jitter='none')
    with quiet():
        short = simulate(param, path, spec, 4, max_seconds=1e-6)
        trial = simulate(param, path, spec, 4, max_seconds=1e-6, min_fresh=5)
    assert short.iterations == 0 and short.losses == []
    assert len(trial.start_losses) == 4 and len(trial.fresh_losses) == 5
    assert trial.iterations == 9 and trial.seconds == trial.losses[-1][1]
    assert trial.start_loss() == pytest.approx(np.mean(trial.start_losses))
    assert trial.score() == pytest.approx(np.mean(trial.fresh_losses))
    # The optimizer's tie test pairs the scored losses, in the order they were applied.
    assert trial.scored_losses() == pytest.approx(trial.fresh_losses)
    # No jitter: every group takes the same time, so the updates come in rounds of 4 and HE
    # over whole rounds is that time over 4 (the plain average counts the first round's wait).
    group_seconds = spec.group_seconds(4, 0, 16, sum(
        b.count for b in get_solver(path).net.learnable_params) * 4)
    assert trial.steady_seconds_per_iteration() == pytest.approx(group_seconds / 4)
    assert trial.seconds_per_iteration > trial.steady_seconds_per_iteration()
