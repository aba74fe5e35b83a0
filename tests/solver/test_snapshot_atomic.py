"""Snapshots are atomic: a cct process killed (SIGKILL, no clean-up of any kind) in the middle of
writing a snapshot file, or a write that fails, leaves every snapshot written before it whole and
leaves no torn file under a snapshot's name.

The kills are real: a child process trains, and a hook in it writes part of a snapshot file, makes
sure those bytes are on disk, and sends itself SIGKILL.
"""
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cct import io as cct_io
from cct.errors import SolverError
from cct.solver import SGDSolver

from conftest import solver_param

TEXT = ('base_lr: 0.05 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.001 snapshot: 3 '
        'snapshot_format: %s snapshot_prefix: "%s" random_seed: %d')
FORMATS = {'BINARYPROTO': ('.caffemodel', '.solverstate'),
           'HDF5': ('.caffemodel.h5', '.solverstate.h5')}

# Run in the child: train with a hook that kills the process while it writes the first file whose
# name contains argv[3] (after half the bytes of a binary file, after the second dataset of an
# HDF5 file, both forced to disk first).
CHILD = textwrap.dedent('''
    import os, signal, sys
    import h5py
    import cct.io.protofiles as protofiles
    from cct.solver import get_solver

    solver_file, resume, target = sys.argv[1], sys.argv[2], sys.argv[3]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    class HalfThenDie:
        def __init__(self, f):
            self.f = f
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return False
        def write(self, data):
            self.f.write(data[:len(data) // 2])
            self.f.flush()
            os.fsync(self.f.fileno())
            die()

    real_open = open
    def killing_open(path, mode='r', *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return HalfThenDie(f) if target in path and 'w' in mode else f
    protofiles.open = killing_open

    real_create = h5py.Group.create_dataset
    datasets = []
    def killing_create(self, *args, **kwargs):
        result = real_create(self, *args, **kwargs)
        if target in self.file.filename:
            datasets.append(1)
            if len(datasets) == 2:
                self.file.flush()
                die()
        return result
    h5py.Group.create_dataset = killing_create

    solver = get_solver(solver_file)
    if resume:
        solver.restore(resume)
    solver.step(6 - solver.iter)
    print('not killed')
''')


def write_solver(tmp_path, fmt, seed):
    path = str(tmp_path / ('solver_%d.prototxt' % seed))
    cct_io.write_text(solver_param(TEXT % (fmt, tmp_path / 'snap', seed)), path)
    return path


def run_killed_child(solver_file, resume, target):
    done = subprocess.run([sys.executable, '-c', CHILD, solver_file, resume, target],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stdout, done.stderr)


def contents(tmp_path, names):
    return {name: (tmp_path / name).read_bytes() for name in names}


def weights_after_resuming(tmp_path, state_file):
    solver = SGDSolver(solver_param(TEXT % ('BINARYPROTO', tmp_path / 'check', 9)))
    solver.restore(str(tmp_path / state_file))
    return [blob.data.copy() for blob in solver.net.learnable_params], solver.iter


@pytest.mark.parametrize('fmt', sorted(FORMATS))
@pytest.mark.parametrize('victim', ['model', 'state'])
def test_kill_while_writing_the_next_snapshot(tmp_path, fmt, victim):
    """Killed while writing iteration 6's model (or its state, the model already written), the
    iteration-3 snapshot still resumes to the same weights, no iteration-6 file is torn or
    appears without its partner, and the next start removes the temporaries."""
    model_ext, state_ext = FORMATS[fmt]
    first = write_solver(tmp_path, fmt, seed=1)
    solver = SGDSolver(first)
    solver.step(3)
    kept = ['snap_iter_3' + model_ext, 'snap_iter_3' + state_ext]
    before = contents(tmp_path, kept)
    expected, _ = weights_after_resuming(tmp_path, kept[1])

    target = 'snap_iter_6' + (model_ext if victim == 'model' else state_ext)
    run_killed_child(first, str(tmp_path / kept[1]), target)

    assert contents(tmp_path, kept) == before
    weights, iteration = weights_after_resuming(tmp_path, kept[1])
    assert iteration == 3
    for mine, theirs in zip(weights, expected):
        np.testing.assert_array_equal(mine, theirs)
    names = set(os.listdir(tmp_path))
    # The pair appears together or not at all: the model (already whole when the state was
    # being written) is still under its temporary name, as is the cct resume state.
    assert not names & {'snap_iter_6' + model_ext, 'snap_iter_6' + state_ext,
                        'snap_iter_6.cctstate.json'}
    left = sorted(name for name in names if name.startswith('snap_iter_6'))
    assert left and all('.tmp' in name for name in left)
    # The next solver with that prefix removes what the killed process left.
    SGDSolver(first)
    assert not [name for name in os.listdir(tmp_path) if name.startswith('snap_iter_6')]


@pytest.mark.parametrize('fmt', sorted(FORMATS))
def test_kill_while_overwriting_a_snapshot_keeps_the_old_file(tmp_path, fmt):
    """A second run into the same prefix, killed while it rewrites snap_iter_3's model, leaves the
    first run's snap_iter_3 files byte for byte."""
    model_ext, state_ext = FORMATS[fmt]
    SGDSolver(write_solver(tmp_path, fmt, seed=1)).step(3)
    kept = ['snap_iter_3' + model_ext, 'snap_iter_3' + state_ext]
    before = contents(tmp_path, kept)
    run_killed_child(write_solver(tmp_path, fmt, seed=2), '', kept[0])
    assert contents(tmp_path, kept) == before


class _FullDisk:
    """A file that takes half of what it is given, then fails as a full disk does."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()
        return False

    def write(self, data):
        self.f.write(data[:len(data) // 2])
        raise OSError(28, 'No space left on device')


@pytest.mark.parametrize('fmt', sorted(FORMATS))
def test_a_failed_write_is_a_clear_error_and_leaves_nothing_behind(tmp_path, fmt, monkeypatch):
    """A write that fails half-way through the state file (a full disk) stops training with a
    SolverError naming the file, removes the temporary files (the model's too: it never appears
    without its state), and leaves the earlier snapshot as it was."""
    import h5py
    import cct.io.protofiles as protofiles
    model_ext, state_ext = FORMATS[fmt]
    solver = SGDSolver(write_solver(tmp_path, fmt, seed=1))
    solver.step(3)
    before = set(os.listdir(tmp_path))
    kept = contents(tmp_path, ['snap_iter_3' + model_ext, 'snap_iter_3' + state_ext])
    victim = 'snap_iter_6' + state_ext
    monkeypatch.setattr(protofiles, 'open', lambda path, mode='r': (
        _FullDisk(open(path, mode)) if victim in path else open(path, mode)), raising=False)
    real_create = h5py.Group.create_dataset

    def create(group, *args, **kwargs):
        if victim in group.file.filename and len(group.file) > 1:
            raise OSError(28, 'No space left on device')
        return real_create(group, *args, **kwargs)
    monkeypatch.setattr(h5py.Group, 'create_dataset', create)
    with pytest.raises(SolverError, match=r'Iteration 6: cannot write the snapshot file .*%s: '
                       r'.*No space left on device' % victim.replace('.', r'\.')):
        solver.step(3)
    # Nothing of iteration 6 is left: not the state's temporary, and not the model without it.
    assert set(os.listdir(tmp_path)) == before
    assert contents(tmp_path, list(kept)) == kept
