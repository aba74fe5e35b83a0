"""Caffe's wall-clock Timer (util/benchmark.hpp, CPU variant), exposed by pycaffe as ``caffe.Timer``."""
import time

from cct.log import logger


class Timer:
    """``start()``/``stop()`` and the elapsed time in ``ms`` (or ``seconds``, ``microseconds``).

    As in Caffe, ``start`` on a running timer and ``stop`` on a stopped one do nothing, and reading
    the time of a running timer stops it first.
    """

    def __init__(self):
        self._running = False
        self._has_run = False
        self._start = self._stop = 0.0

    @property
    def running(self):
        return self._running

    @property
    def has_run_at_least_once(self):
        return self._has_run

    def start(self):
        if not self._running:
            self._start = time.perf_counter()
            self._running = True
            self._has_run = True

    def stop(self):
        if self._running:
            self._stop = time.perf_counter()
            self._running = False

    def _elapsed(self):
        if not self._has_run:
            logger.warning('Timer has never been run before reading time.')
            return 0.0
        if self._running:
            self.stop()
        return self._stop - self._start

    @property
    def ms(self):
        """Elapsed milliseconds between the last start and stop."""
        return self._elapsed() * 1e3

    @property
    def microseconds(self):
        return self._elapsed() * 1e6

    @property
    def seconds(self):
        return self._elapsed()
