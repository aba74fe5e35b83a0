"""Snapshots and restores (Solver::Snapshot/Restore, SGDSolver's SnapshotSolverState* and
RestoreSolverStateFrom* in Caffe): the weights as ``<prefix>_iter_N.caffemodel`` (or ``.caffemodel.h5``)
and the solver state as ``<prefix>_iter_N.solverstate`` (or ``.solverstate.h5``).

The binary state is Caffe's ``SolverState`` message: iter, learned_net (the model file just
written, as the path was given), history (one BlobProto per history array: shape + data, double
data for float64 nets) and current_step. Each file is written under a temporary name and renamed, so
an interrupted snapshot never leaves a torn file where a good one was; a write that fails stops
training with a SolverError, and unlike Caffe, weights that are not finite are never written (the
last snapshot on disk stays the last good one). Restoring reads ``learned_net``
relative to the current directory, as Caffe does; when it is not there cct also tries the state
file's own directory (a snapshot directory moved as a whole still resumes).
"""
import os

import numpy as np

from cct import io as cct_io
from cct.blob import shape_string
from cct.errors import SolverError
from cct.io.blobproto import array_to_blobproto_bytes, blobproto_to_array, proto_shape
from cct.log import logger
from cct.proto import caffe_pb2
from cct.solver.nonfinite import non_finite_params

_HDF5 = caffe_pb2.SolverParameter.HDF5
_BINARYPROTO = caffe_pb2.SolverParameter.BINARYPROTO


def _write(solver, path, write):
    """Run ``write()``, which writes ``path`` atomically; an OSError (a full disk, a directory that
    went away) becomes a SolverError naming the file."""
    try:
        write()
    except OSError as e:
        raise SolverError('Iteration %d: cannot write the snapshot file %s: %s; training stopped, '
                          'and the snapshots written before are untouched'
                          % (solver.iter, path, e.strerror or e)) from None


def snapshot(solver):
    """Write the model, then the state that names it; refuse weights that are not finite."""
    bad = non_finite_params(solver.net)
    if bad:
        # A finite loss with a non-finite gradient: the update just taken broke the weights,
        # and the loss will only show it at the next forward pass.
        raise SolverError('Iteration %d: the weights are not finite (%s) after the update of '
                          'iteration %d; training stopped without writing this snapshot, so the '
                          'snapshots written before are untouched'
                          % (solver.iter, ', '.join(bad), solver.iter - 1))
    fmt = solver.param.snapshot_format
    write_diff = solver.param.snapshot_diff
    if fmt == _BINARYPROTO:
        model = solver.snapshot_filename('.caffemodel')
        logger.info('Snapshotting to binary proto file %s', model)
        _write(solver, model, lambda: solver.net.save(model, write_diff))
        state = solver.snapshot_filename('.solverstate')
        logger.info('Snapshotting solver state to binary proto file %s', state)
        message = caffe_pb2.SolverState(iter=solver.iter, learned_net=model,
                                        current_step=solver.current_step)
        double = solver.dtype == np.float64
        for array in solver.history_on_host():
            message.history.add().MergeFromString(array_to_blobproto_bytes(array, double=double))
        _write(solver, state, lambda: cct_io.write_binary(message, state))
    elif fmt == _HDF5:
        from cct.io import hdf5
        model = solver.snapshot_filename('.caffemodel.h5')
        logger.info('Snapshotting to HDF5 file %s', model)
        _write(solver, model, lambda: hdf5.save_weights_hdf5(solver.net, model, write_diff))
        state = solver.snapshot_filename('.solverstate.h5')
        logger.info('Snapshotting solver state to HDF5 file %s', state)
        _write(solver, state, lambda: hdf5.save_solverstate_hdf5(
            state, solver.iter, model, solver.current_step, solver.history_on_host()))
    else:
        raise SolverError('Unsupported snapshot format: %d' % fmt)


def _learned_net_path(learned_net, state_file):
    if os.path.exists(learned_net):
        return learned_net
    beside = os.path.join(os.path.dirname(state_file), os.path.basename(learned_net))
    if os.path.exists(beside):
        logger.info('%s not found from the current directory; using %s beside the solver state',
                    learned_net, beside)
        return beside
    raise SolverError('%s: the weights it names (learned_net: %s) were not found, neither from the '
                      'current directory nor beside the state file' % (state_file, learned_net))


def _set_history(solver, state_file, arrays_and_shapes):
    if len(arrays_and_shapes) != len(solver.history):
        raise SolverError('%s: Incorrect length of history blobs: the file has %d, the %s solver '
                          'keeps %d for this net' % (state_file, len(arrays_and_shapes),
                                                    solver.type, len(solver.history)))
    logger.info('SGDSolver: restoring history')
    for i, (history, (read, shape)) in enumerate(zip(solver.history, arrays_and_shapes)):
        if tuple(shape) != history.shape:
            raise SolverError('%s: history blob %d has shape %s, the net\'s param needs %s'
                              % (state_file, i, shape_string(shape), shape_string(history.shape)))
        solver.net.device.from_host(read(), out=history)


def restore(solver, state_file):
    """Put iter, current_step, the history and the learned_net weights back from ``state_file``."""
    if state_file.endswith('.h5'):
        from cct.io import hdf5
        state = hdf5.load_solverstate_hdf5(state_file)
        solver.iter = state['iter']
        if state['learned_net']:
            solver.net.copy_from(_learned_net_path(state['learned_net'], state_file))
        solver.current_step = state['current_step']
        _set_history(solver, state_file,
                     [((lambda a=a: a), a.shape) for a in state['history']])
        return
    state = cct_io.read_binary(state_file, caffe_pb2.SolverState, 'solver state')
    solver.iter = state.iter
    if state.HasField('learned_net'):
        solver.net.copy_from(_learned_net_path(state.learned_net, state_file))
    solver.current_step = state.current_step
    _set_history(solver, state_file, [
        ((lambda p=p: blobproto_to_array(p, dtype=solver.dtype)), proto_shape(p))
        for p in state.history])
