"""The Ray actors of compute-group training: thin wrappers that carry a ParameterServer or a
GroupWorker into a Ray worker process.

The server's log lines are captured in its process and handed back with every answer, so the
driver prints one Caffe-format log (with the server's own times and file:line) instead of Ray's
prefixed copies of actor output. Workers log only warnings (to Ray's log files).
"""
import logging
import os
import threading

import numpy as np

from cct.errors import CctError
from cct.log import logger
from cct.proto import caffe_pb2


class _Capture(logging.Handler):
    """Keeps the log records of this process until ``drain`` hands them over."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []
        self.batches = 0

    def emit(self, record):
        self.records.append({'created': record.created, 'levelno': record.levelno,
                             'levelname': record.levelname, 'pathname': record.pathname,
                             'lineno': record.lineno, 'msg': record.getMessage(),
                             'thread': record.thread, 'name': record.name})

    def drain(self):
        """``(sequence number, records)``: the numbers let the driver print the batches of
        answers that reach its threads out of order in the server's order."""
        records, self.records = self.records, []
        self.batches += 1
        return self.batches, records


class Replay:
    """Logs the record batches of ServerActor answers through this process's cct logger, in
    the order the server wrote them (group threads receive answers in any order)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.waiting = {}
        self.next = 1

    def __call__(self, batch):
        number, records = batch
        with self.lock:
            self.waiting[number] = records
            while self.next in self.waiting:
                for record in self.waiting.pop(self.next):
                    logger.handle(logging.makeLogRecord(dict(record, args=None)))
                self.next += 1


def _enter(cwd, level):
    # Relative paths in solver and net files are read from the driver's directory, as plain
    # training reads them; on a node without that directory they must be absolute (or shared).
    if cwd and os.path.isdir(cwd):
        os.chdir(cwd)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def _solver_param(param_bytes):
    return caffe_pb2.SolverParameter.FromString(param_bytes)


class ServerActor:
    """A ParameterServer in a Ray actor; every method returns its captured log records too."""

    def __init__(self, cwd, level):
        _enter(cwd, level)
        self.capture = _Capture()
        logger.addHandler(self.capture)
        self.server = None

    def setup(self, param_bytes, source, groups, group_size, restore, dtype_name):
        """Build the server; returns ``(pid, error message or None, log records)``."""
        from cct.distributed.server import ParameterServer
        try:
            self.server = ParameterServer(_solver_param(param_bytes), source, groups=groups,
                                          group_size=group_size, restore=restore,
                                          dtype=np.dtype(dtype_name))
        except CctError as e:
            return os.getpid(), '%s' % e, self.capture.drain()
        return os.getpid(), None, self.capture.drain()

    def model(self):
        # The arrays are serialised into the object store as this call returns, before any
        # other call can change them, so no copy is needed.
        return self.server.model(copy=False)

    def start(self):
        return self._answer(self.server.start)

    def apply(self, group, metas, *gradients):
        """Two returns: the answer (with its log records), and the model after this update
        for the group's next round (None once training is over)."""
        for meta, arrays in zip(metas, gradients):
            meta.gradients = arrays
        answer = self._answer(self.server.apply, group, metas)
        return answer, None if self.server.done() else self.server.model(copy=False)

    def request(self, action):
        return self._answer(self.server.request, action)

    def finish(self, final_loss):
        return self._answer(self.server.finish, final_loss)

    def status(self):
        """``(iteration, done, last snapshot)``."""
        return self.server.iteration, self.server.done(), self.server.last_snapshot

    def _answer(self, method, *args):
        try:
            value = method(*args)
        except CctError as e:
            return _Failed('%s' % e), self.capture.drain()
        return value, self.capture.drain()


class _Failed:
    """A user-facing error raised in the actor (a non-finite loss, an unwritable snapshot)."""

    def __init__(self, message):
        self.message = message


def failed(value):
    """The error message of an actor answer, or None."""
    return value.message if isinstance(value, _Failed) else None


class WorkerActor:
    """A GroupWorker in a Ray actor. Ray restarts it after its process dies: the constructor
    builds the net again, and its data shard starts over from its first record."""

    def __init__(self, cwd, param_bytes, source, rank, count, dtype_name):
        _enter(cwd, logging.WARNING)
        from cct.distributed.worker import GroupWorker
        self.worker = GroupWorker(_solver_param(param_bytes), source, rank, count,
                                  np.dtype(dtype_name))

    def ready(self):
        return os.getpid()

    def compute(self, model):
        """Two returns: the gradient's metadata (small; the driver reads it) and the gradient
        arrays (passed on to the server by reference, never through the driver)."""
        part = self.worker.compute(model)
        gradients, part.gradients = part.gradients, None
        return part, gradients

    def forward_loss(self, model):
        return self.worker.forward_loss(model)

    def resume(self, state_file, iteration):
        self.worker.resume(state_file, iteration)
