"""The synchronisation of the replicas that run one batch's shares at once, each in its own
thread: sums of small host values over the shares (Layer.whole_batch_sum), in a fixed order.

Every replica's copy of a layer makes the same calls in the same order (the replicas are one net),
so the k-th call of each replica meets the k-th call of the others at a barrier. The sum is taken
over the shares in device order by every thread alike, so a run is repeatable bit for bit. The time
each thread spends waiting there is kept, so that the auto split measures computing, not waiting.
"""
import threading
import time

import numpy as np

from cct.errors import CctError


class ShareGroup:
    """The replicas taking part in the current pass, and their meeting point.

    Args:
        names: the devices' names, in the split's order (for messages).
        timeout: seconds a replica waits for the others before giving up with an error.
    """

    def __init__(self, names, timeout=3600.0):
        self.names = names
        self.timeout = timeout
        self.members = []
        self.waited = [0.0] * len(names)
        self._barrier = None
        self._slots = {}

    def handle(self, index):
        """What replica ``index``'s layers hold as ``share_group``."""
        return ShareHandle(self, index)

    def begin(self, members):
        """Start a pass in which replicas ``members`` (indices, ascending) take part."""
        self.members = list(members)
        self._barrier = threading.Barrier(len(self.members)) if len(self.members) > 1 else None
        self._slots = {}

    def abort(self):
        """Release every replica waiting (one failed: the others then fail too, not hang)."""
        if self._barrier is not None:
            self._barrier.abort()

    def _wait(self, index):
        start = time.perf_counter()
        try:
            self._barrier.wait(self.timeout)
        except threading.BrokenBarrierError:
            raise _Abandoned('%s waited %g s for the other devices (%s) at a synchronisation '
                             'of the split batch' % (self.names[index], self.timeout, ', '.join(
                                 self.names[m] for m in self.members if m != index))) from None
        finally:
            self.waited[index] += time.perf_counter() - start

    def all_sum(self, index, values):
        """``values`` of replica ``index`` summed with the other members', in member order."""
        if self._barrier is None:
            return values
        self._slots[index] = values
        self._wait(index)
        total = None
        for member in self.members:
            value = self._slots[member]
            if total is None:
                total = np.array(value, copy=True) if isinstance(value, np.ndarray) else value
            else:
                total = total + value
        self._wait(index)
        return total


class ShareHandle:
    """One replica's view of its ShareGroup."""

    def __init__(self, group, index):
        self.group = group
        self.index = index

    def all_sum(self, values):
        return self.group.all_sum(self.index, values)


class _Abandoned(CctError):
    """A replica left waiting because another one failed or timed out."""
