"""Snapshots and resume: Caffe's file names and layouts (binary SolverState, HDF5), atomic writes,
and a run resumed at iteration k that ends bit-identical to a straight run to 2k."""
import os

import h5py
import numpy as np
import pytest

from cct import io as cct_io
from cct.errors import SolverError
from cct.proto import caffe_pb2
from cct.solver import (AdaDeltaSolver, AdaGradSolver, AdamSolver, NesterovSolver, RMSPropSolver,
                        SGDSolver)

from conftest import feed, solver_param

TEXT = ('base_lr: 0.05 lr_policy: "multistep" gamma: 0.5 stepvalue: 2 stepvalue: 4 '
        'weight_decay: 0.001 snapshot: 3 snapshot_format: %s snapshot_prefix: "%s"')
# Each solver type's own settings (AdaGrad and RMSProp refuse a momentum).
SETTINGS = {SGDSolver: 'momentum: 0.9', NesterovSolver: 'momentum: 0.9', AdaGradSolver: '',
            RMSPropSolver: 'rms_decay: 0.95', AdaDeltaSolver: 'momentum: 0.95 delta: 1e-6',
            AdamSolver: 'momentum: 0.9 momentum2: 0.99'}


def make(cls, prefix, fmt, extra='', seed=5):
    param = solver_param(TEXT % (fmt, prefix) + ' random_seed: %d %s ' % (seed, SETTINGS[cls]) +
                         extra)
    solver = cls(param)
    feed(solver.net)
    return solver


def state_of(solver):
    return [b.data.copy() for b in solver.net.learnable_params], \
        [h.copy() for h in solver.history], solver.iter, solver.current_step


@pytest.mark.parametrize('cls', list(SETTINGS), ids=[cls.type for cls in SETTINGS])
@pytest.mark.parametrize('fmt, model_ext, state_ext', [
    ('BINARYPROTO', '.caffemodel', '.solverstate'),
    ('HDF5', '.caffemodel.h5', '.solverstate.h5')])
def test_resume_at_k_is_bit_identical_to_straight_run(tmp_path, cls, fmt, model_ext, state_ext):
    straight = make(cls, tmp_path / 'straight', fmt)
    straight.step(6)
    assert sorted(os.listdir(tmp_path)) == sorted(
        'straight_iter_%d%s' % (i, ext) for i in (3, 6)
        for ext in (model_ext, state_ext, '.cctstate.json'))

    resumed = make(cls, tmp_path / 'resumed', fmt, seed=77)
    resumed.restore(str(tmp_path / ('straight_iter_3' + state_ext)))
    assert (resumed.iter, resumed.current_step) == (3, 1)
    resumed.step(3)
    for mine, theirs in zip(state_of(resumed), state_of(straight)):
        if isinstance(mine, list):
            for a, b in zip(mine, theirs):
                np.testing.assert_array_equal(a, b)
        else:
            assert mine == theirs


def test_binary_solverstate_is_caffes_message(tmp_path):
    solver = make(AdamSolver, tmp_path / 'adam', 'BINARYPROTO')
    solver.step(3)
    state = cct_io.read_binary(str(tmp_path / 'adam_iter_3.solverstate'), caffe_pb2.SolverState)
    assert state.iter == 3
    assert state.current_step == 1
    assert state.learned_net == str(tmp_path / 'adam_iter_3.caffemodel')
    # Adam: all first moments, then all second moments, written with `shape` and float data.
    assert [tuple(h.shape.dim) for h in state.history] == [(2, 3), (2,), (2, 3), (2,)]
    np.testing.assert_array_equal(np.asarray(state.history[2].data).reshape(2, 3),
                                  solver.history[2])
    model = cct_io.read_net_binary(state.learned_net)
    assert [layer.name for layer in model.layer] == ['data', 'ip', 'loss']
    np.testing.assert_array_equal(np.asarray(model.layer[1].blobs[0].data).reshape(2, 3),
                                  solver.net.params['ip'][0].data)


def test_hdf5_snapshot_layout(tmp_path):
    solver = make(SGDSolver, tmp_path / 'h', 'HDF5', 'snapshot_diff: true')
    solver.step(3)
    with h5py.File(tmp_path / 'h_iter_3.caffemodel.h5', 'r') as f:
        assert sorted(f['data']) == ['data', 'ip', 'loss']
        assert len(f['data/data']) == 0
        assert f['data/ip/0'].shape == (2, 3) and f['data/ip/0'].dtype == np.float32
        np.testing.assert_array_equal(f['data/ip/1'][()], solver.net.params['ip'][1].data)
        np.testing.assert_array_equal(f['diff/ip/0'][()], solver.net.params['ip'][0].diff)
    with h5py.File(tmp_path / 'h_iter_3.solverstate.h5', 'r') as f:
        assert f['iter'][()].tolist() == [3]
        assert f['current_step'][()].tolist() == [1]
        assert f['learned_net'][()] == str(tmp_path / 'h_iter_3.caffemodel.h5').encode()
        assert sorted(f['history']) == ['0', '1']
    assert not [name for name in os.listdir(tmp_path) if '.tmp' in name]


def test_hdf5_weights_round_trip_through_net_and_pycaffe(tmp_path):
    solver = make(SGDSolver, tmp_path / 'w', 'HDF5')
    solver.step(3)
    other = make(SGDSolver, tmp_path / 'o', 'HDF5', seed=9)
    assert not np.array_equal(other.net.params['ip'][0].data, solver.net.params['ip'][0].data)
    other.net.copy_from(str(tmp_path / 'w_iter_3.caffemodel.h5'))
    np.testing.assert_array_equal(other.net.params['ip'][0].data, solver.net.params['ip'][0].data)
    solver.net.save_hdf5(str(tmp_path / 'again.h5'))
    other.net.params['ip'][1].data[...] = 0
    other.net.load_hdf5(str(tmp_path / 'again.h5'))
    np.testing.assert_array_equal(other.net.params['ip'][1].data, solver.net.params['ip'][1].data)


def test_solve_with_resume_file_and_snapshot_after_train(tmp_path, caplog):
    first = make(SGDSolver, tmp_path / 's', 'BINARYPROTO', 'max_iter: 4')
    first.solve()
    # 3 from `snapshot: 3`, 4 from snapshot_after_train (4 is not a snapshot iteration).
    assert {'s_iter_3.solverstate', 's_iter_4.solverstate'} <= set(os.listdir(tmp_path))
    second = make(SGDSolver, tmp_path / 't', 'BINARYPROTO', 'max_iter: 4')
    with caplog.at_level('INFO', logger='cct'):
        second.solve(str(tmp_path / 's_iter_3.solverstate'))
    assert 'Restoring previous solver status from %s' % (tmp_path / 's_iter_3.solverstate') \
        in caplog.text
    assert second.iter == 4
    np.testing.assert_array_equal(second.net.params['ip'][0].data, first.net.params['ip'][0].data)


def test_restore_finds_learned_net_beside_a_moved_state(tmp_path):
    os.mkdir(tmp_path / 'a')
    solver = make(SGDSolver, tmp_path / 'a' / 'm', 'BINARYPROTO')
    solver.step(3)
    os.rename(tmp_path / 'a', tmp_path / 'b')
    resumed = make(SGDSolver, tmp_path / 'r', 'BINARYPROTO')
    resumed.restore(str(tmp_path / 'b' / 'm_iter_3.solverstate'))
    np.testing.assert_array_equal(resumed.net.params['ip'][0].data,
                                  solver.net.params['ip'][0].data)


def test_restore_rejects_a_state_of_another_solver_type(tmp_path):
    adam = make(AdamSolver, tmp_path / 'adam', 'BINARYPROTO')
    adam.step(3)
    sgd = make(SGDSolver, tmp_path / 'sgd', 'BINARYPROTO')
    with pytest.raises(SolverError, match='Incorrect length of history blobs: the file has 4'):
        sgd.restore(str(tmp_path / 'adam_iter_3.solverstate'))


def test_unwritable_snapshot_prefix_fails_at_construction(tmp_path):
    with pytest.raises(SolverError, match="Cannot write to snapshot prefix"):
        make(SGDSolver, tmp_path / 'missing_dir' / 'x', 'BINARYPROTO')
