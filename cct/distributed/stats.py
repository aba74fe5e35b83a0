"""Per-group staleness and throughput records of the parameter server, and the log lines that
report them.

Staleness of an applied gradient = how many updates the server applied between the group reading
the model and its gradient arriving (0 for every update of a single group). The lines start with
``Group`` and never contain Caffe's ``Iteration N`` or ``lr =`` patterns, so Caffe's parse_log.py
and ``cct plot`` read the server's log as a plain training log.
"""
import collections
import time


class GroupStats:
    """Counts, per group, updates, their staleness and the workers' compute time.

    Args:
        groups: the number of compute groups.
        clock: a function returning seconds (time.perf_counter; a simulator passes its own).
    """

    def __init__(self, groups, clock=time.perf_counter):
        self.groups = groups
        self.clock = clock
        self.histogram = collections.Counter()
        self.total = [_Window() for _ in range(groups)]
        self.window = [_Window() for _ in range(groups)]
        self.started = clock()
        self.window_started = self.started

    def record(self, group, staleness, compute_seconds):
        self.histogram[staleness] += 1
        for record in (self.total[group], self.window[group]):
            record.add(staleness, compute_seconds)

    def report(self):
        """One line per group for the updates since the last report; starts a new window."""
        now = self.clock()
        lapse = max(now - self.window_started, 1e-9)
        lines = [_line(group, record, lapse) for group, record in enumerate(self.window)]
        self.window = [_Window() for _ in range(self.groups)]
        self.window_started = now
        return lines

    def summary(self):
        """Per-group totals of the whole run and the staleness histogram."""
        lapse = max(self.clock() - self.started, 1e-9)
        lines = [_line(group, record, lapse, 'in all') for group, record in enumerate(self.total)]
        if self.histogram:
            lines.append('Group staleness histogram (staleness: updates): ' + ', '.join(
                '%d: %d' % (value, self.histogram[value]) for value in sorted(self.histogram)))
        return lines

    def mean_staleness(self):
        count = sum(self.histogram.values())
        return sum(k * v for k, v in self.histogram.items()) / count if count else 0.0


class _Window:
    def __init__(self):
        self.updates = 0
        self.staleness_sum = 0
        self.staleness_max = 0
        self.compute_seconds = 0.0

    def add(self, staleness, compute_seconds):
        self.updates += 1
        self.staleness_sum += staleness
        self.staleness_max = max(self.staleness_max, staleness)
        self.compute_seconds += compute_seconds


def _line(group, record, lapse, label='since the last report'):
    if not record.updates:
        return 'Group %d: no updates %s' % (group, label)
    return ('Group %d: %d updates %s (%.3g updates/s), staleness mean %.3g max %d, '
            'worker compute %.3g s per update'
            % (group, record.updates, label, record.updates / lapse,
               record.staleness_sum / record.updates, record.staleness_max,
               record.compute_seconds / record.updates))
