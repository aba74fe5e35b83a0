"""``cct train --groups G --momentum-mode auto``: the parameter server starts with the compensated
momentum (the solver file's minus 1 - 1/G) and the log states it."""
import pytest

import cct.distributed
from cct import cli

from grouped_helpers import write_solver


class RecordingTrainer:
    """Stands in for GroupedTrainer: keeps the SolverParameter the server would be given."""
    seen = []

    def __init__(self, param, groups, group_size, **kwargs):
        self.seen.append((param.momentum, groups))

    def run(self):
        return None


def test_auto_mode_hands_the_server_the_compensated_momentum(digits, monkeypatch, capfd):
    monkeypatch.setattr(cct.distributed, 'GroupedTrainer', RecordingTrainer)
    path = write_solver(digits, 'auto4', max_iter=10)
    assert cli.main(['train', '--solver', path, '--groups', '4', '--momentum-mode', 'auto']) == 0
    log = capfd.readouterr().err
    assert cli.main(['train', '--solver', path, '--groups', '4']) == 0
    assert 'Momentum compensation' not in capfd.readouterr().err
    assert RecordingTrainer.seen[0] == (pytest.approx(0.15), 4)
    assert RecordingTrainer.seen[1] == (pytest.approx(0.9), 4)
    assert 'explicit momentum 0.15 = 0.9 - (1 - 1/4) for 4 compute groups' in log


def test_auto_mode_needs_groups_and_a_momentum_solver(digits, capfd):
    path = write_solver(digits, 'autobad', max_iter=10)
    assert cli.main(['train', '--solver', path, '--momentum-mode', 'auto']) == 1
    assert 'need --groups' in capfd.readouterr().err
    adam = write_solver(digits, 'autoadam', max_iter=10, type='"Adam"')
    assert cli.main(['train', '--solver', adam, '--groups', '2', '--momentum-mode', 'auto']) == 1
    assert 'solver type Adam does not have' in capfd.readouterr().err


def test_two_groups_on_ray_train_with_auto_momentum(digits, ray_cluster, capfd):
    path = write_solver(digits, 'autoray', max_iter=20, test_interval=20, display=10)
    assert cli.main(['train', '--solver', path, '--groups', '2', '--worker-cpus', '1',
                     '--momentum-mode', 'auto']) == 0
    log = capfd.readouterr().err
    assert 'explicit momentum 0.4 = 0.9 - (1 - 1/2) for 2 compute groups' in log
    assert 'Iteration 20, Testing net' in log and 'Optimization Done.' in log
