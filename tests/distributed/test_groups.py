"""Compute-group training on a local Ray (one start for the module, 2 CPUs, a fresh token): groups
against plain training, accuracy with two asynchronous groups through the CLI, a worker killed
mid-run, the server killed mid-run and its snapshot resumed, placement refused up front, and a
client without the token refused."""
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from cct import cli
from cct.errors import CctError
from cct.distributed import GroupedTrainer, ServerDiedError, train_grouped
from cct.solver import get_solver
from cct.solver.solver import SolverAction
from cct.tools.parse_log import parse_log

from grouped_helpers import losses, test_accuracies, write_solver

pytestmark = pytest.mark.usefixtures('ray_cluster')


def test_one_group_matches_plain_training(digits, cct_log):
    path = write_solver(digits, 'g1', max_iter=40, test_interval=20)
    get_solver(path).solve()
    plain = cct_log()
    trainer = train_grouped(path, 1, 1, worker_cpus=1, timeout=120)
    grouped = cct_log()[len(plain):]
    assert trainer.iteration == 40 and trainer.lost == []
    expected, got = losses(plain), losses(grouped)
    assert sorted(got) == sorted(expected) == [0, 10, 20, 30, 40]
    # The worker runs on one thread, plain training on two: equal up to float reordering.
    np.testing.assert_allclose([got[i] for i in sorted(got)],
                               [expected[i] for i in sorted(expected)], rtol=1e-4)
    np.testing.assert_allclose(test_accuracies(grouped), test_accuracies(plain), atol=0.0034)


def test_group_of_two_matches_the_doubled_batch(digits, cct_log):
    get_solver(write_solver(digits, 'b128', batch_size=128, max_iter=20)).solve()
    doubled = losses(cct_log())
    before = len(cct_log())
    train_grouped(write_solver(digits, 'k2', batch_size=64, max_iter=20), 1, 2, worker_cpus=1,
                  timeout=120)
    pair = losses(cct_log()[before:])
    assert sorted(pair) == sorted(doubled) == [0, 10, 20]
    np.testing.assert_allclose([pair[i] for i in (0, 10, 20)], [doubled[i] for i in (0, 10, 20)],
                               rtol=1e-4)


def test_two_groups_through_the_cli_reach_plain_accuracy(digits, capfd, tmp_path):
    # Plain training passes 0.97 on these digits by iteration 150 (0.983 in the example's run).
    path = write_solver(digits, 'g2cli', max_iter=300, test_interval=150, display=50)
    assert cli.main(['train', '--solver', path, '--groups', '2', '--worker-cpus', '1']) == 0
    log = capfd.readouterr().err
    accuracy = test_accuracies(log)
    assert len(accuracy) == 3 and accuracy[-1] >= 0.97, accuracy
    assert 'Group 1: ' in log and 'staleness mean' in log
    assert 'Group staleness histogram' in log
    # The server's lines in its own order: the test at 150 comes before the display at 150.
    assert log.index('Iteration 150, Testing net') < log.index('Iteration 150 (')
    log_file = tmp_path / 'g2.log'
    log_file.write_text(log)
    train, test = parse_log(str(log_file))
    assert [row['NumIters'] for row in train] == [0, 50, 100, 150, 200, 250]
    assert [row['NumIters'] for row in test] == [0, 150, 300]
    assert test[-1]['accuracy'] >= 0.97


def test_a_killed_worker_is_restarted_and_the_run_completes(digits, cct_log):
    path = write_solver(digits, 'kill_worker', max_iter=30, test_interval=1000)
    killed = []

    def kill_once(trainer, group, result):
        if result.iteration >= 10 and not killed:
            killed.append(trainer.worker_pids[1][0])
            os.kill(killed[0], signal.SIGKILL)
    trainer = train_grouped(path, 2, 1, worker_cpus=1, on_update=kill_once, timeout=120)
    assert trainer.iteration == 30
    assert len(trainer.lost) == 1 and 'group 1 worker 0 (pid %d) died' % killed[0] \
        in trainer.lost[0]
    assert trainer.worker_pids[1][0] != killed[0]
    assert 'its in-flight gradient was lost' in cct_log()


def test_server_death_keeps_the_last_snapshot_which_resumes(digits, tmp_path):
    path = write_solver(digits, 'kill_server', max_iter=30, snapshot=10, test_interval=1000)

    def kill_server(trainer, group, result):
        if result.iteration >= 15:
            os.kill(trainer.server_pid, signal.SIGKILL)
    with pytest.raises(ServerDiedError) as error:
        train_grouped(path, 2, 1, worker_cpus=1, on_update=kill_server, timeout=120)
    state = os.path.join(digits, 'kill_server_iter_10.solverstate')
    message = str(error.value)
    assert 'the parameter server died' in message and state in message
    # The grouped run's snapshot resumes as a grouped run (plain -> grouped and back go through
    # the same files: the server's state is a plain solver's).
    trainer = GroupedTrainer(path, 1, 1, snapshot=state, worker_cpus=1, timeout=120)
    trainer.run()
    assert trainer.iteration == 30
    plain = get_solver(path)
    plain.restore(os.path.join(digits, 'kill_server_iter_30.solverstate'))
    assert plain.iter == 30


def test_placement_the_cluster_cannot_hold_is_refused_at_once(digits):
    path = write_solver(digits, 'too_big', max_iter=10)
    started = time.monotonic()
    with pytest.raises(CctError, match=r'missing CPU: 3 needed, 2 available'):
        train_grouped(path, 3, 1, worker_cpus=1, timeout=60)
    with pytest.raises(CctError, match=r'missing gpu_box: 2 needed, 0 available'):
        train_grouped(path, 2, 1, worker_cpus=0.5, group_resources=[{'gpu_box': 1}] * 2,
                      timeout=60)
    assert time.monotonic() - started < 30


def test_a_client_without_the_token_is_refused(ray_cluster):
    address = ray_cluster.get_runtime_context().gcs_address
    env = dict(os.environ, RAY_AUTH_TOKEN='0' * 32)
    client = subprocess.Popen(
        [sys.executable, '-c', 'import ray, sys; ray.init(address=sys.argv[1]); '
         'print("CONNECTED", ray.cluster_resources())', address],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(client.stdout), daemon=True)
    reader.start()
    try:
        # Ray retries for ~20 s before giving up; its first refusal is logged within a second.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and client.poll() is None and \
                not any('Unauthenticated' in line for line in lines):
            time.sleep(0.1)
    finally:
        client.kill()
        client.wait(10)
    reader.join(10)
    seen = ''.join(lines)
    assert 'Unauthenticated' in seen and 'CONNECTED' not in seen, seen


def test_signals_snapshot_and_stop_a_grouped_run(digits, cct_log):
    path = write_solver(digits, 'signals', max_iter=200, test_interval=1000,
                        snapshot_after_train='true')

    class Signals:
        pending, sent = [], set()

        def check(self):
            return self.pending.pop(0) if self.pending else SolverAction.NONE

    signals = Signals()

    def on_update(trainer, group, result):
        for at, action in ((5, SolverAction.SNAPSHOT), (12, SolverAction.STOP)):
            if result.iteration >= at and action not in signals.sent:
                signals.sent.add(action)
                signals.pending.append(action)
    trainer = train_grouped(path, 2, 1, worker_cpus=1, signals=signals, on_update=on_update,
                            timeout=120)
    log = cct_log()
    assert 12 <= trainer.iteration < 200
    assert 'Optimization stopped early.' in log and 'Optimization Done.' not in log
    written = sorted(int(name.split('_iter_')[1].split('.')[0]) for name in os.listdir(digits)
                     if name.startswith('signals_iter_') and name.endswith('.solverstate'))
    assert len(written) == 2 and 5 <= written[0] < written[1] == trainer.iteration
    assert trainer.last_snapshot.endswith('signals_iter_%d.solverstate' % trainer.iteration)


def test_a_bad_net_fails_in_one_line_before_any_worker_starts(digits, capfd):
    path = write_solver(digits, 'bad', net='"%s"' % (digits / 'missing.prototxt'))
    assert cli.main(['train', '--solver', path, '--groups', '2']) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1].startswith('cct train: error: ') and 'missing.prototxt' in err[-1]
    assert 'Traceback' not in '\n'.join(err)
