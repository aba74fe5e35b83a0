"""Runs the optimizer's points (cct.distributed.optimizer) as real compute groups on Ray
(cct.distributed.groups), timed on the wall clock.

A point is one GroupedTrainer run of G groups of W // G workers from the latest checkpoint: it
trains until its seconds have passed (and at least ``trial_updates`` gradients computed on a
model it updated were applied, so its score compares momenta and rates), until the target
accuracy, or until it diverges, then stops through the trainer's signal poll (the server writes
its state, the next point's checkpoint). The clock starts at the trainer's first poll or first
update, whichever comes first (within 50 ms of its group threads starting, once its actors are
placed): the actors' start-up (seconds per point on a loaded machine, the same for every point)
is logged and reported apart, not charged to the point, as Omnivore's runs are timed from their
first iteration. Losses come with the server's
answers (ApplyResult.loss); test accuracies from the server's Caffe log lines, which the trainer
replays on this process's cct logger (the console shows none of them while a point runs).
"""
import logging
import os
import re
import threading
import time

from cct.errors import CctError
from cct.log import logger
from cct.proto import caffe_pb2
from cct.solver.solver import SolverAction
from cct.distributed.simulator import (TRIAL_ROUNDS, TRIAL_UPDATES, run_name, trial_length,
                                       trial_losses, trial_score)

_TESTING = re.compile(r'Iteration (\d+), Testing net \(#(\d+)\)')
_OUTPUT = re.compile(r'Test net output #\d+: (\S+) = (\S+)')


class _Point(logging.Handler):
    """One point's run: the signal poll GroupedTrainer calls (``check``), its per-update callback
    (``on_update``) and a handler of the server's replayed test lines."""

    def __init__(self, seconds, trial_updates, target):
        super().__init__(logging.INFO)
        self.seconds, self.trial_updates, self.target = seconds, trial_updates, target
        self.mutex = threading.Lock()  # not "lock": logging.Handler holds that one in emit
        self.started = None
        self.start_iteration = None
        self.losses, self.fresh, self.stale, self.tests = [], [], [], []
        self.reached = None
        self.stopping = False
        self._testing = None

    def clock(self):
        now = time.perf_counter()
        if self.started is None:
            self.started = now
        return now - self.started

    def check(self):
        with self.mutex:
            now = self.clock()
            if self.stopping:
                return SolverAction.NONE
            if self.reached is not None or (now >= self.seconds and
                                            len(self.fresh) >= self.trial_updates):
                self.stopping = True
                return SolverAction.STOP
        return SolverAction.NONE

    def on_update(self, trainer, group, result):
        with self.mutex:
            if self.start_iteration is None:
                # The first update applied read the starting model (staleness 0).
                self.start_iteration = result.iteration - 1
            self.losses.append((result.iteration, self.clock(), result.loss))
            if result.iteration - 1 - result.staleness > self.start_iteration:
                self.fresh.append(result.loss)
            else:
                self.stale.append(result.loss)

    def emit(self, record):
        message = record.getMessage()
        testing = _TESTING.search(message)
        if testing:
            self._testing = (int(testing.group(1)), int(testing.group(2)))
            return
        output = _OUTPUT.search(message)
        if output and self._testing and self._testing[1] == 0 and \
                'accuracy' in output.group(1).lower():
            with self.mutex:
                accuracy = float(output.group(2))
                self.tests.append((self._testing[0], self.clock(), accuracy))
                if self.target is not None and accuracy >= self.target and self.reached is None:
                    self.reached = self.tests[-1]
            self._testing = None


class RayEvaluator:
    """Runs the optimizer's points on the Ray this process is connected to.

    Args:
        param, source: the solver.
        workers: the workers to share among the groups (G groups of workers // G).
        workdir: where the points' states are written.
        target_accuracy: the accuracy whose first test marks the target (or None).
        trial_updates: a point runs past its seconds until this many gradients computed on a
            model it updated were applied, and ``trial_rounds`` per group
            (simulator.trial_length).
        worker_cpus: CPUs each worker reserves (None: GroupedTrainer's default).
        timeout: seconds any single wait may take.
    """

    def __init__(self, param, source, workers, workdir, target_accuracy=None,
                 trial_updates=TRIAL_UPDATES, worker_cpus=None, timeout=300.0,
                 trial_rounds=TRIAL_ROUNDS):
        if workers < 1:
            raise CctError('--workers must be at least 1 (got %d)' % workers)
        self.param, self.source, self.workers = param, source, workers
        self.workdir, self.target, self.trial_updates = workdir, target_accuracy, trial_updates
        self.worker_cpus, self.timeout, self.trial_rounds = worker_cpus, timeout, trial_rounds
        #: What, besides the point, a measurement depends on (the optimizer's cache key).
        self.settings = [workers, trial_updates, trial_rounds]
        os.makedirs(workdir, exist_ok=True)
        self.startup_seconds = []

    def group_counts(self):
        """1, 2, 4, ... up to one group per worker."""
        counts, g = [], 1
        while g < self.workers:
            counts.append(g)
            g *= 2
        return counts + [self.workers]

    def evaluate(self, groups, momentum, base_lr, seconds, start):
        from cct.distributed.groups import GroupedTrainer
        name = run_name(groups, momentum, base_lr, seconds, start, self.settings)
        param = caffe_pb2.SolverParameter()
        param.CopyFrom(self.param)
        param.base_lr, param.momentum = base_lr, momentum
        param.snapshot, param.snapshot_after_train = 0, True
        param.snapshot_prefix = os.path.join(self.workdir, name)
        param.display = 0
        point = _Point(seconds, trial_length(groups, self.trial_updates, self.trial_rounds),
                       self.target)
        trainer = GroupedTrainer(param, groups, self.workers // groups, snapshot=start,
                                 worker_cpus=self.worker_cpus, signals=point,
                                 on_update=point.on_update, timeout=self.timeout,
                                 source=self.source)
        diverged, called = False, time.perf_counter()
        with _console_quiet(point):
            try:
                trainer.run()
            except CctError as e:
                if 'not finite' not in str(e):
                    raise
                diverged = True
                logger.warning('Optimizer point %d groups, momentum %g, rate %g diverged: %s',
                               groups, momentum, base_lr, str(e).splitlines()[0])
        used = point.clock()
        self.startup_seconds.append(time.perf_counter() - called - used)
        diverged = diverged or any(a != a for _, _, a in point.tests)  # NaN accuracy
        updates = len(point.losses)
        last = point.losses[-1][1] if point.losses else 0.0
        start_iteration = point.start_iteration if point.start_iteration is not None else \
            trainer.iteration
        reached = point.reached
        scored = point.fresh or [v for _, _, v in point.losses]
        record = {'seconds_per_iteration': last / updates if updates else None,
                  'score': trial_score(scored, diverged),
                  'losses': trial_losses(scored, diverged),
                  'diverged': diverged, 'seconds': used, 'start_iteration': start_iteration,
                  'iterations': start_iteration + updates,
                  'iterations_to_target': reached and reached[0] - start_iteration,
                  'time_to_target_s': reached and reached[1],
                  'snapshot': None if diverged else trainer.last_snapshot,
                  'accuracy': point.tests[-1][2] if point.tests else None,
                  'startup_seconds': self.startup_seconds[-1],
                  'start_loss': sum(point.stale) / len(point.stale) if point.stale else None}
        logger.info('Optimizer ran %d groups, momentum %g, rate %g%s on Ray: %d updates in %.3g '
                    's (%.3g s per update; actors started in %.3g s), score %.4g%s', groups,
                    momentum, base_lr, ' from ' + os.path.basename(start) if start else '',
                    updates, used, record['seconds_per_iteration'] or float('nan'),
                    record['startup_seconds'], record['score'],
                    ' (diverged)' if diverged else '')
        return record


class _console_quiet:
    """While a point runs: cct's log at INFO (the server captures what the driver's level lets
    through) into the point's handler only; the other handlers see warnings and errors."""

    def __init__(self, point):
        self.point = point

    def __enter__(self):
        self.level = logger.level
        self.others = [(h, h.level) for h in logger.handlers]
        for handler, level in self.others:
            handler.setLevel(max(level, logging.WARNING))
        logger.setLevel(logging.INFO)
        logger.addHandler(self.point)

    def __exit__(self, *exc):
        logger.removeHandler(self.point)
        logger.setLevel(self.level)
        for handler, level in self.others:
            handler.setLevel(level)
