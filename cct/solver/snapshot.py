"""Snapshots and restores (Solver::Snapshot/Restore, SGDSolver's SnapshotSolverState* and
RestoreSolverStateFrom* in Caffe): the weights as ``<prefix>_iter_N.caffemodel`` (or ``.caffemodel.h5``)
and the solver state as ``<prefix>_iter_N.solverstate`` (or ``.solverstate.h5``).

The binary state is Caffe's ``SolverState`` message: iter, learned_net (the model file just
written, as the path was given), history (one BlobProto per history array: shape + data, double
data for float64 nets) and current_step. Beside them, ``<prefix>_iter_N.cctstate.json`` keeps the
data sources' read positions and the generators (cct.solver.resume_state), so a resume goes on
exactly. Every file is written whole under a temporary name, then all are renamed, the solverstate
last: an interrupted snapshot never leaves a torn file where a good one was, and the newest
solverstate always has its model; temporaries left by a killed process are removed when the next
solver with that prefix starts; a write that fails stops
training with a SolverError, and unlike Caffe, weights that are not finite are never written (the
last snapshot on disk stays the last good one). Restoring reads ``learned_net``
relative to the current directory, as Caffe does; when it is not there cct also tries the state
file's own directory (a snapshot directory moved as a whole still resumes).
"""
import glob
import os
import re

import numpy as np

from cct import io as cct_io
from cct.blob import shape_string
from cct.errors import SolverError
from cct.io.blobproto import array_to_blobproto_bytes, blobproto_to_array, proto_shape
from cct.log import logger
from cct.proto import caffe_pb2
from cct.solver import resume_state
from cct.solver.nonfinite import non_finite_params

_HDF5 = caffe_pb2.SolverParameter.HDF5
_BINARYPROTO = caffe_pb2.SolverParameter.BINARYPROTO


def _write(solver, path, write):
    """Run ``write()``; an OSError (a full disk, a directory that went away) becomes a SolverError
    naming the file."""
    try:
        write()
    except OSError as e:
        raise SolverError('Iteration %d: cannot write the snapshot file %s: %s; training stopped, '
                          'and the snapshots written before are untouched'
                          % (solver.iter, path, e.strerror or e)) from None


def _temporary(path):
    return '%s.tmp%d' % (path, os.getpid())


class _Pair:
    """The files of one snapshot, each written whole under a temporary name first; ``commit``
    renames them in order, the solverstate last, so a .solverstate on disk always has its model
    (and its cct resume state) beside it, whenever the process is killed."""

    def __init__(self, solver):
        self.solver = solver
        self.written = []

    def add(self, path, write):
        tmp = _temporary(path)
        self.written.append((tmp, path))
        _write(self.solver, path, lambda: write(tmp))

    def commit(self):
        for tmp, path in self.written:
            _write(self.solver, path, lambda: os.replace(tmp, path))
        self.written = []

    def discard(self):
        for tmp, _ in self.written:
            if os.path.exists(tmp):
                os.remove(tmp)


def snapshot(solver):
    """Write the model, the cct resume state and the solver state that names the model, each
    under a temporary name, then rename them (the state last); refuse weights that are not
    finite."""
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
    if fmt not in (_BINARYPROTO, _HDF5):
        raise SolverError('Unsupported snapshot format: %d' % fmt)
    pair = _Pair(solver)
    try:
        if fmt == _BINARYPROTO:
            model = solver.snapshot_filename('.caffemodel')
            logger.info('Snapshotting to binary proto file %s', model)
            pair.add(model, lambda tmp: solver.net.save(tmp, write_diff))
            state = solver.snapshot_filename('.solverstate')
            message = caffe_pb2.SolverState(iter=solver.iter, learned_net=model,
                                            current_step=solver.current_step)
            double = solver.dtype == np.float64
            for array in solver.history_on_host():
                message.history.add().MergeFromString(
                    array_to_blobproto_bytes(array, double=double))
            write_state = lambda tmp: cct_io.write_binary(message, tmp)  # noqa: E731
            state_log = 'Snapshotting solver state to binary proto file %s'
        else:
            from cct.io import hdf5
            model = solver.snapshot_filename('.caffemodel.h5')
            logger.info('Snapshotting to HDF5 file %s', model)
            pair.add(model, lambda tmp: hdf5.save_weights_hdf5(solver.net, tmp, write_diff))
            state = solver.snapshot_filename('.solverstate.h5')
            write_state = lambda tmp: hdf5.save_solverstate_hdf5(  # noqa: E731
                tmp, solver.iter, model, solver.current_step, solver.history_on_host())
            state_log = 'Snapshotting solver state to HDF5 file %s'
        resume = resume_state.to_bytes(resume_state.collect(solver))
        pair.add(resume_state.path_for(state), lambda tmp: cct_io.write_bytes(resume, tmp))
        logger.info(state_log, state)
        pair.add(state, write_state)
        pair.commit()
    finally:
        pair.discard()


_STALE = re.compile(r'\.tmp(\d+)$')


def remove_stale_temporaries(prefix):
    """Remove the temporaries of snapshots under ``prefix`` whose writer was killed (its process
    is gone); those of a live process are its snapshot in progress and stay."""
    for path in glob.glob(glob.escape(prefix) + '_iter_*.tmp*'):
        match = _STALE.search(path)
        if not match or _process_alive(int(match.group(1))):
            continue
        try:
            os.remove(path)
        except OSError:
            continue
        logger.info('Removed %s, a snapshot file left half-written by process %s, which is gone',
                    path, match.group(1))


def _process_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        resume_state.restore(solver, state_file)
        return
    state = cct_io.read_binary(state_file, caffe_pb2.SolverState, 'solver state')
    solver.iter = state.iter
    if state.HasField('learned_net'):
        solver.net.copy_from(_learned_net_path(state.learned_net, state_file))
    solver.current_step = state.current_step
    _set_history(solver, state_file, [
        ((lambda p=p: blobproto_to_array(p, dtype=solver.dtype)), proto_shape(p))
        for p in state.history])
    resume_state.restore(solver, state_file)
