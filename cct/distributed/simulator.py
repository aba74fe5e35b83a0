"""A discrete-event simulator of compute-group training (``cct simulate``): G groups in one
process, real gradients computed by cct on the model each group read, a simulated clock from a
cluster description (cct.distributed.cluster_spec).

Each group reads the server's model, computes its gradient at once (a real forward/backward of its
GroupWorker on its data shard), and its gradient "arrives" after the group's simulated compute and
transfer time (times a jitter sample: exponential, none, or measured ratios). Arrivals are applied
in time order by the very ParameterServer that grouped training on Ray runs (``apply``), one at a
time (``server.seconds_per_update`` each), so staleness, statistical efficiency and the loss curve
are real; only the clock is simulated. A group's gradient stands for its K machines' summed
gradients over the solver's batch (Omnivore splits the batch inside a group), which one worker
computing the whole batch gives exactly.

The test accuracy is measured by the simulator itself every ``test_interval`` server updates (the
server's own test pass is switched off) so that it can be recorded against simulated seconds.
SimulatedEvaluator runs the optimizer's points (cct.distributed.optimizer) on it.
"""
import contextlib
import hashlib
import heapq
import json
import logging
import math
import os

import numpy as np

from cct import runtime
from cct.errors import CctError, SolverError
from cct.log import logger
from cct.proto import caffe_pb2
from cct.solver import nets as _nets
from cct.distributed.momentum import set_momentum_mode
from cct.distributed.server import ParameterServer
from cct.distributed.stats import GroupStats
from cct.distributed.worker import GroupWorker

#: Updates on a model a trial updated itself that an optimizer's trial runs at least...
TRIAL_UPDATES = 3
#: ...and at least this many per group, so that every group has pushed a gradient of a model
#: the trial updated (staleness near its steady state) before the trial is scored. Measured on
#: the digits (README, Omnivore section): 2 rounds cost more than they improved the choice.
TRIAL_ROUNDS = 1


def trial_length(groups, trial_updates=TRIAL_UPDATES, rounds=TRIAL_ROUNDS):
    """The updates on a model it updated itself that a trial of ``groups`` groups runs at least:
    ``max(trial_updates, rounds * groups)``."""
    return max(trial_updates, rounds * groups)


def run_name(groups, momentum, base_lr, seconds, start, settings):
    """An optimizer run's checkpoint name, ``g<G>_`` and a hash of the point, its start and the
    evaluator's settings: deterministic, so a restarted optimizer finds its checkpoints."""
    return 'g%d_' % groups + hashlib.sha1(json.dumps(
        [groups, momentum, base_lr, seconds, start and os.path.basename(start), settings]).encode()
    ).hexdigest()[:12]


class SimulationResult:
    """What a simulated run measured.

    Attributes:
        groups, momentum, base_lr: the configuration (momentum: the explicit one used).
        seconds_per_iteration: simulated seconds per server update (hardware efficiency).
        iterations_to_target, time_to_target_s: the first tested iteration whose accuracy
            reached the target and its simulated time (statistical efficiency); None if never.
        iterations, seconds: how far the run went.
        losses: one ``(iteration, seconds, loss)`` per applied gradient.
        tests: one ``(iteration, seconds, accuracy, loss)`` per test pass.
        fresh_losses: the losses of the gradients computed on a model this run updated;
            start_losses: those computed on its starting model.
        staleness: {staleness: updates}.
        diverged: the loss became non-finite (the run stopped there).
        snapshot: the solver state written at the end, or None.
    """

    def __init__(self, groups, momentum, base_lr):
        self.groups, self.momentum, self.base_lr = groups, momentum, base_lr
        self.seconds_per_iteration = None
        self.iterations_to_target = self.time_to_target_s = None
        self.iterations = 0
        self.start_iteration = 0
        self.seconds = 0.0
        self.losses, self.tests = [], []
        self.fresh_losses, self.start_losses = [], []
        self.staleness = {}
        self.diverged = False
        self.snapshot = None

    def score(self):
        """The optimizer's score of a run: the mean loss over its second half (at least its last
        10 losses; inf if diverged), counting only the gradients computed on a model the run
        itself updated (a run of G groups starts with G gradients on its starting model, whose
        losses say nothing of its momentum and rate). Omnivore averages its last 10 display
        lines, each already an average over ``display`` iterations; one batch's loss alone is
        too noisy to rank by."""
        return trial_score(self._scored_source(), self.diverged)

    def scored_losses(self):
        """The losses score() averages, in the order they were applied (the optimizer's tie
        test pairs them with another trial's)."""
        return trial_losses(self._scored_source(), self.diverged)

    def _scored_source(self):
        return self.fresh_losses or [loss for _, _, loss in self.losses]

    def start_loss(self):
        """The mean loss of the gradients computed on the starting model (None if none)."""
        return float(np.mean(self.start_losses)) if self.start_losses else None

    def steady_seconds_per_iteration(self):
        """Simulated seconds per update over whole rounds of G updates after the first (all G
        groups start together, and with near-constant group times their updates come in bursts
        of G, so a span of part of a round is biased); a run shorter than two rounds: its
        plain seconds per update (the start-up included)."""
        rounds = len(self.losses) // self.groups
        if rounds >= 2:
            first = self.losses[self.groups - 1][1]
            last = self.losses[rounds * self.groups - 1][1]
            return (last - first) / ((rounds - 1) * self.groups)
        return self.seconds_per_iteration

    def to_json(self):
        """The ``--json`` object: the keys the issue names, then the curves."""
        return {'groups': self.groups, 'momentum': self.momentum, 'base_lr': self.base_lr,
                'seconds_per_iteration': self.seconds_per_iteration,
                'iterations_to_target': self.iterations_to_target,
                'time_to_target_s': self.time_to_target_s,
                'diverged': self.diverged, 'iterations': self.iterations,
                'simulated_seconds': self.seconds,
                'staleness_histogram': {str(k): v for k, v in sorted(self.staleness.items())},
                'tests': [{'iteration': i, 'seconds': s, 'accuracy': a, 'loss': l}
                          for i, s, a, l in self.tests],
                'train_losses': [[i, s, l] for i, s, l in self.losses]}


def trial_losses(losses, diverged):
    """The losses a trial is scored by: the second half of ``losses`` (at least the last 10);
    none if diverged."""
    if diverged or not losses:
        return []
    return [float(loss) for loss in losses[-max(10, len(losses) // 2):]]


def trial_score(losses, diverged):
    """The mean of trial_losses; inf if diverged."""
    scored = trial_losses(losses, diverged)
    return float(np.mean(scored)) if scored else math.inf


@contextlib.contextmanager
def quiet(enabled=True):
    """Silence cct's INFO log (the server's Caffe lines) while many runs are simulated."""
    if not enabled:
        yield
        return
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


class Simulation:
    """G compute groups of a solver on a simulated cluster.

    Args:
        param: a ``caffe_pb2.SolverParameter`` (copied; not changed).
        source: the solver's name for messages.
        cluster: a ClusterSpec.
        groups: the number of compute groups G.
        momentum, base_lr: override the solver file's values (None keeps them).
        momentum_mode: ``explicit`` or ``auto`` (momentum − (1 − 1/G); cct.distributed.momentum).
        seed: the seed of the compute-time jitter.
        restore: a .solverstate to start from (the optimizer's checkpoints).
        test_interval: server updates between accuracy tests (default: the solver's).
        observer: called as ``observer(version, weights, gradients)`` for each gradient computed.
        dtype: the nets' float type.
    """

    def __init__(self, param, source, cluster, groups, *, momentum=None, base_lr=None,
                 momentum_mode='explicit', seed=0, restore=None, test_interval=None,
                 observer=None, dtype=np.float32):
        cluster.check_groups(groups)
        copy = caffe_pb2.SolverParameter()
        copy.CopyFrom(param)
        if base_lr is not None:
            copy.base_lr = base_lr
        if momentum is not None:
            copy.momentum = momentum
        set_momentum_mode(copy, groups, momentum_mode, source)
        self.test_interval = copy.test_interval if test_interval is None else test_interval
        self.test_initialization = copy.test_initialization
        # Switches the server's own test pass off (a test net needs a positive interval).
        copy.test_interval = 2 ** 31 - 1
        copy.test_initialization = False
        copy.snapshot = 0
        copy.snapshot_after_train = False
        self.param, self.source, self.cluster, self.groups = copy, source, cluster, groups
        self.seed, self.observer = seed, observer
        self.now = 0.0
        self.result = SimulationResult(groups, float(copy.momentum), float(copy.base_lr))
        try:
            self.server = ParameterServer(copy, source, groups=groups, restore=restore,
                                          dtype=dtype)
            self.workers = [GroupWorker(copy, source, g, groups, dtype) for g in range(groups)]
        finally:
            runtime.set_solver_count(1)
            runtime.set_solver_rank(0)
        net = self.workers[0].net
        batch = net.blobs_list[0].shape[0] * max(copy.iter_size, 1)
        itemsize = np.dtype(dtype).itemsize
        model_bytes = sum(blob.count for blob in net.learnable_params) * itemsize
        self.mean_seconds = [cluster.group_seconds(groups, g, batch, model_bytes)
                             for g in range(groups)]
        self._transfer = cluster.transfer_seconds(model_bytes)
        self._compute = [cluster.compute_seconds(groups, g, batch) for g in range(groups)]
        self._accuracy_index = _accuracy_blob(self.server.solver, source)

    # ------------------------------------------------------------------ the event loop
    def run(self, *, max_iter=None, max_seconds=None, target_accuracy=None,
            stop_at_target=True, snapshot_prefix=None, min_fresh=0):
        """Simulate until the solver's max_iter (or ``max_iter`` server updates), ``max_seconds``
        simulated seconds (but not before ``min_fresh`` gradients computed on a model this run
        updated were applied: an optimizer's trial needs that many to be scored), or (with
        ``stop_at_target``) the target accuracy.

        Returns:
            SimulationResult.
        """
        server, result = self.server, self.result
        rng = np.random.default_rng(self.seed)
        limit = server.max_iter if max_iter is None else server.iteration + max_iter
        result.start_iteration = server.iteration
        if target_accuracy is not None and self._accuracy_index is None:
            raise CctError('%s: --target-accuracy needs an Accuracy output in the test net'
                           % self.source)
        server.start()
        # The server's per-group records read the simulated clock (start() makes new ones).
        server.stats = GroupStats(self.groups, clock=lambda: self.now)
        arrivals, order, server_free = [], 0, 0.0
        if self._test_due():
            self._test(target_accuracy)
        for group in range(self.groups):
            gradient = self._compute_gradient(group)
            if gradient is None:
                break
            heapq.heappush(arrivals, (self._duration(group, rng), order, group, gradient))
            order += 1
        while arrivals and not result.diverged:
            arrival, _, group, gradient = heapq.heappop(arrivals)
            self.now = server_free = max(arrival, server_free) + self.cluster.server_seconds
            if max_seconds is not None and self.now > max_seconds and \
                    len(result.fresh_losses) >= min_fresh:
                self.now = max(max_seconds, result.losses[-1][1] if result.losses else 0.0)
                break
            applied = server.apply(group, [gradient])
            result.losses.append((applied.iteration, self.now, gradient.loss))
            if gradient.version > result.start_iteration:
                result.fresh_losses.append(gradient.loss)
            else:
                result.start_losses.append(gradient.loss)
            if self._test_due():
                self._test(target_accuracy)
            if server.iteration >= limit or (stop_at_target and
                                             result.iterations_to_target is not None):
                break
            gradient = self._compute_gradient(group)
            if gradient is not None:
                heapq.heappush(arrivals, (self.now + self._duration(group, rng), order, group,
                                          gradient))
                order += 1
        result.iterations = server.iteration
        result.seconds = self.now
        done = server.iteration - result.start_iteration
        # Up to the last update applied: a run cut at max_seconds idles after it.
        last = result.losses[-1][1] if result.losses else 0.0
        result.seconds_per_iteration = last / done if done else None
        result.staleness = dict(server.stats.histogram)
        if snapshot_prefix and not result.diverged:
            server.solver.param.snapshot_prefix = snapshot_prefix
            result.snapshot = server.snapshot()
        return result

    def _duration(self, group, rng):
        return self._compute[group] * self.cluster.jitter_factor(rng) + self._transfer

    def _compute_gradient(self, group):
        model = self.server.model()
        try:
            gradient = self.workers[group].compute(model)
        except SolverError as e:
            logger.warning('Simulated group %d diverged: %s', group, str(e).splitlines()[0])
            self.result.diverged = True
            return None
        if self.observer is not None:
            self.observer(model[0], model[1], gradient.gradients)
        return gradient

    def _test_due(self):
        iteration = self.server.iteration
        return bool(self.test_interval) and iteration % self.test_interval == 0 and \
            (iteration > 0 or self.test_initialization)

    def _test(self, target):
        """Mean accuracy and loss of test net 0 over test_iter batches, on the server's model."""
        solver = self.server.solver
        test_net = solver.test_nets[0]
        _nets.share_trained_layers(test_net, solver.net)
        accuracy, loss, count = 0.0, 0.0, solver.param.test_iter[0]
        for _ in range(count):
            loss += float(test_net.forward_from_to())
            if self._accuracy_index is not None:
                accuracy += float(test_net.blobs_list[self._accuracy_index].data.ravel()[0])
        accuracy = accuracy / count if self._accuracy_index is not None else None
        if not math.isfinite(loss):
            # The last update made the model non-finite. Caffe's Accuracy counts a NaN score
            # as correct (no score exceeds the label's), so its 'accuracy' would read 1.0.
            logger.warning('Simulated run diverged: the test loss at iteration %d is %s',
                           solver.iter, loss)
            self.result.diverged = True
            return
        self.result.tests.append((solver.iter, self.now, accuracy, loss / count))
        if target is not None and accuracy is not None and accuracy >= target and \
                self.result.iterations_to_target is None:
            self.result.iterations_to_target = solver.iter - self.result.start_iteration
            self.result.time_to_target_s = self.now


def _accuracy_blob(solver, source):
    """The index of test net 0's accuracy output (the first output named like 'accuracy')."""
    if not solver.test_nets:
        return None
    net = solver.test_nets[0]
    for index in net.output_blob_indices:
        if 'accuracy' in net.blob_names[index].lower():
            return index
    return None


def simulate(param, source, cluster, groups, **kwargs):
    """Build a Simulation and run it; ``kwargs`` go to the constructor or to ``run``."""
    run_keys = ('max_iter', 'max_seconds', 'target_accuracy', 'stop_at_target',
                'snapshot_prefix', 'min_fresh')
    run_args = {k: kwargs.pop(k) for k in run_keys if k in kwargs}
    return Simulation(param, source, cluster, groups, **kwargs).run(**run_args)


class SimulatedEvaluator:
    """Runs the optimizer's points on the cluster simulator (cct.distributed.simulator).

    Args:
        param, source: the solver.
        cluster: a ClusterSpec.
        workdir: where checkpoints are written.
        target_accuracy: the accuracy whose first test marks the target (or None).
        seed: the jitter seed of every run.
        trial_updates, trial_rounds: a run goes past its seconds until
            ``trial_length(G, trial_updates, trial_rounds)`` gradients computed on a model it
            updated were applied, so that its score compares momenta and rates (a trial of G
            groups first applies G gradients of its starting model).
    """

    def __init__(self, param, source, cluster, workdir, target_accuracy=None, seed=0,
                 trial_updates=TRIAL_UPDATES, trial_rounds=TRIAL_ROUNDS):
        self.param, self.source, self.cluster = param, source, cluster
        self.workdir, self.target, self.seed = workdir, target_accuracy, seed
        self.trial_updates, self.trial_rounds = trial_updates, trial_rounds
        #: What, besides the point, a measurement depends on (the optimizer's cache key).
        self.settings = [seed, trial_updates, trial_rounds]
        os.makedirs(workdir, exist_ok=True)
        self.count = 0

    def evaluate(self, groups, momentum, base_lr, seconds, start):
        name = run_name(groups, momentum, base_lr, seconds, start, self.settings)
        with quiet():
            simulation = Simulation(self.param, self.source, self.cluster, groups,
                                    momentum=momentum, base_lr=base_lr, seed=self.seed,
                                    restore=start)
            result = simulation.run(max_seconds=seconds, target_accuracy=self.target,
                                    snapshot_prefix=os.path.join(self.workdir, name),
                                    min_fresh=trial_length(groups, self.trial_updates,
                                                           self.trial_rounds))
        logger.info('Optimizer measured %d groups, momentum %g, rate %g%s: %.4g s per update, '
                    'score %.4g%s', groups, momentum, base_lr,
                    ' from ' + os.path.basename(start) if start else '',
                    result.steady_seconds_per_iteration() or math.nan, result.score(),
                    ' (diverged)' if result.diverged else '')
        accuracy = result.tests[-1][2] if result.tests else None
        return {'seconds_per_iteration': result.steady_seconds_per_iteration(),
                'score': result.score(),
                'diverged': result.diverged, 'seconds': result.seconds,
                'start_iteration': result.start_iteration, 'iterations': result.iterations,
                'iterations_to_target': result.iterations_to_target,
                'time_to_target_s': result.time_to_target_s, 'snapshot': result.snapshot,
                'accuracy': accuracy, 'start_loss': result.start_loss(),
                'losses': result.scored_losses()}
