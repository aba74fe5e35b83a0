"""The parameter server of compute-group training (Omnivore's model servers): a plain Python object
that owns the model and the solver state and applies Caffe's update, one per group gradient.

It holds an ordinary cct Solver (any of the six types), so the learning rate (by the server's
iteration count), momentum, weight decay, clipping, test nets, display and snapshots are the very
code plain ``cct train`` runs; only the forward/backward passes happen elsewhere. Nothing here knows
about Ray: the Ray actor in cct.distributed.ray_actors wraps this class, and a simulator can drive it
directly (``model()``, then ``apply()`` in whatever order gradients arrive).

The order of events matches Solver.step: the test due at iteration N runs on the model after N
updates; each applied gradient is displayed (smoothed loss, ``Train net output`` lines), then the
update logs its rate and is taken, then ``iter`` advances and a due snapshot is written.
"""
import time

import numpy as np

from cct import rng
from cct.log import logger
from cct.solver import get_solver
from cct.solver.solver import SolverAction, cpp_float
from cct.distributed.stats import GroupStats

_STATE_EXTENSIONS = {0: '.solverstate.h5', 1: '.solverstate'}


class GroupGradient:
    """What one worker of a group sends with its gradient.

    Attributes:
        version: the server iteration of the model the gradient was computed on.
        loss: the worker's loss (averaged over its ``iter_size`` passes).
        outputs: the train net's output blobs, flattened and concatenated (the display values).
        gradients: one array per learnable param, normalised over the worker's own batch.
        compute_seconds: the worker's time for loading the model and forward/backward.
        state: {param index: data} of the params with lr_mult 0 after the worker's forward
            (BatchNorm's running statistics); the server keeps those of the group's first worker,
            as Caffe's multi-GPU keeps the root solver's.
        resume: with a single worker, its GroupWorker.resume_state() (data positions and
            generators), which the server's snapshots record so that they resume exactly.
    """

    def __init__(self, version, loss, outputs, gradients, compute_seconds=0.0, state=None):
        self.version = version
        self.loss = loss
        self.outputs = outputs
        self.gradients = gradients
        self.compute_seconds = compute_seconds
        self.state = state or {}
        self.resume = None


class ApplyResult:
    """The server's answer to one group gradient.

    Attributes:
        applied: False when it arrived after training ended (it was not applied).
        iteration: the server's iteration count after this call.
        staleness: updates applied since the group read its model (None if not applied).
        done: training reached max_iter (or a stop was requested); the group should stop.
        snapshot: the solver state written by this call, or None.
        loss: the applied gradient's loss (its workers' mean), or None if not applied.
    """

    def __init__(self, applied, iteration, staleness, done, snapshot=None, loss=None):
        self.applied = applied
        self.loss = loss
        self.iteration = iteration
        self.staleness = staleness
        self.done = done
        self.snapshot = snapshot


class ParameterServer:
    """Owns the model and the solver state; applies one Caffe update per group gradient.

    Args:
        param: a ``caffe_pb2.SolverParameter`` (or a solver prototxt path).
        source: the solver file's name, for messages.
        groups: how many compute groups push gradients (for the per-group log lines).
        group_size: workers per group; their gradients are averaged (see ``apply``).
        restore: a .solverstate(.h5) to resume from, or None.
        dtype: the nets' float type.
    """

    def __init__(self, param, source=None, *, groups=1, group_size=1, restore=None,
                 dtype=np.float32):
        self.solver = get_solver(param, source=source, dtype=dtype)
        self.groups = groups
        self.group_size = group_size
        if restore:
            logger.info('Restoring previous solver status from %s', restore)
            self.solver.restore(restore)
        solver = self.solver
        self.start_iter = solver.iter
        self.stop_requested = False
        self.last_snapshot = None
        self.worker_resume = None
        self.stats = GroupStats(groups)
        solver._losses, solver._smoothed_loss = [], solver.dtype.type(0)
        solver._requested_early_exit = False
        self._timer_start = time.perf_counter()
        self._iterations_last = solver.iter

    # ------------------------------------------------------------------ what groups call
    @property
    def iteration(self):
        return self.solver.iter

    @property
    def max_iter(self):
        return self.solver.param.max_iter

    def done(self):
        return self.stop_requested or self.solver.iter >= self.solver.param.max_iter

    def model(self, copy=True):
        """``(version, weights)``: the server's iteration count and one array per learnable param
        (copies unless ``copy`` is False, for callers that serialise them at once)."""
        params = self.solver.net.learnable_params
        weights = [blob.data.copy() if copy else blob.data for blob in params]
        return self.solver.iter, weights

    def start(self):
        """Log the start of solving and run the test due at the starting iteration (as
        Solver.solve and the first pass of Solver.step do)."""
        solver, p = self.solver, self.solver.param
        self.stats = GroupStats(self.groups)
        self._timer_start = time.perf_counter()
        logger.info('Solving %s', solver.net.name)
        logger.info('Learning Rate Policy: %s', p.lr_policy)
        logger.info('Compute groups: %d of %d worker%s each, asynchronous across groups',
                    self.groups, self.group_size, '' if self.group_size == 1 else 's')
        if p.test_interval and solver.iter % p.test_interval == 0 and \
                (solver.iter > 0 or p.test_initialization) and not self.done():
            solver.test_all()

    def apply(self, group, parts):
        """Apply one group's gradient: the mean of its workers' gradients (Caffe's multi-GPU sums
        them and scales by 1/count, which is the big batch's gradient), as one solver iteration.

        Args:
            group: the group's index (for its staleness and throughput record).
            parts: one GroupGradient per worker of the group, all on the same model version.

        Returns:
            ApplyResult.
        """
        solver, p = self.solver, self.solver.param
        if self.done():
            return ApplyResult(False, solver.iter, None, True)
        version = parts[0].version
        staleness = solver.iter - version
        dtype = solver.dtype.type
        params = solver.net.learnable_params
        if parts[0].resume is not None:
            self.worker_resume = parts[0].resume
        for param_id, data in parts[0].state.items():
            np.copyto(params[param_id].data, data.reshape(params[param_id].data.shape))
        for param_id, blob in enumerate(params):
            diff = blob.diff
            np.copyto(diff, parts[0].gradients[param_id].reshape(diff.shape))
            for part in parts[1:]:
                diff += part.gradients[param_id].reshape(diff.shape)
            if len(parts) > 1:
                diff *= dtype(1.0 / len(parts))
        loss = dtype(parts[0].loss)
        outputs = np.asarray(parts[0].outputs, solver.dtype)
        if len(parts) > 1:
            loss = dtype(sum(dtype(part.loss) for part in parts) / dtype(len(parts)))
            outputs = sum(np.asarray(part.outputs, solver.dtype) for part in parts) / \
                dtype(len(parts))
        self.stats.record(group, staleness, sum(part.compute_seconds for part in parts) /
                          len(parts))
        solver._update_smoothed_loss(loss, self.start_iter, p.average_loss)
        if p.display and solver.iter % p.display == 0:
            self._display(outputs)
        solver.apply_update()
        solver.iter += 1
        snapshot = None
        if p.snapshot and solver.iter % p.snapshot == 0:
            snapshot = self.snapshot()
        if p.test_interval and solver.iter % p.test_interval == 0 and not self.done():
            solver.test_all()
        return ApplyResult(True, solver.iter, staleness, self.done(), snapshot, float(loss))

    def _display(self, outputs):
        solver, p = self.solver, self.solver.param
        lapse = time.perf_counter() - self._timer_start
        per_s = (solver.iter - self._iterations_last) / (lapse or 1)
        logger.info('Iteration %d (%s iter/s, %ss/%d iters), loss = %s', solver.iter,
                    cpp_float(per_s), cpp_float(lapse), p.display,
                    cpp_float(solver._smoothed_loss))
        self._timer_start = time.perf_counter()
        self._iterations_last = solver.iter
        solver._log_outputs(solver.net, 'Train', outputs)
        for line in self.stats.report():
            logger.info('%s', line)

    # ------------------------------------------------------------------ control
    def request(self, action):
        """Act on a SolverAction from the driver (a signal): snapshot now, or stop."""
        if action == SolverAction.SNAPSHOT:
            return self.snapshot()
        if action == SolverAction.STOP:
            self.stop_requested = True
        return None

    def snapshot(self):
        """Write ``<prefix>_iter_N.caffemodel`` and ``.solverstate`` now; returns the state file.

        The cct resume state beside them holds the single worker's data positions and generators
        when there is one worker; with several, the server's own (unused) train net's, so a resume
        starts the data from the first record, as Caffe resumes."""
        if self.worker_resume is not None:
            self.solver.net.set_resume_state(self.worker_resume['train'], 'the worker')
            rng.set_state(self.worker_resume['rng'])
        self.solver.snapshot()
        self.last_snapshot = self.solver.snapshot_filename(
            _STATE_EXTENSIONS.get(self.solver.param.snapshot_format, '.solverstate'))
        return self.last_snapshot

    def finish(self, final_loss=None):
        """End of training, as Solver.solve ends: the snapshot after training, then (unless
        stopped early) the final loss line and the test due at the last iteration.

        Args:
            final_loss: the train loss of the final model on the next batch (group 0's workers'
                mean, computed by the caller when ``needs_final_loss()``), or None.

        Returns:
            The last solver state written, or None.
        """
        solver, p = self.solver, self.solver.param
        if p.snapshot_after_train and (not p.snapshot or solver.iter % p.snapshot != 0):
            self.snapshot()
        for line in self.stats.summary():
            logger.info('%s', line)
        if self.stop_requested:
            logger.info('Optimization stopped early.')
            return self.last_snapshot
        if final_loss is not None:
            solver._update_smoothed_loss(solver.dtype.type(final_loss), self.start_iter,
                                         p.average_loss)
            logger.info('Iteration %d, loss = %s', solver.iter, cpp_float(solver._smoothed_loss))
        if p.test_interval and solver.iter % p.test_interval == 0:
            solver.test_all()
        logger.info('Optimization Done.')
        return self.last_snapshot

    def needs_final_loss(self):
        """Whether ``finish`` prints a final loss (Caffe's display at the last iteration)."""
        p = self.solver.param
        return bool(p.display and self.solver.iter % p.display == 0 and not self.stop_requested)
