"""Cluster descriptions for the simulator (``cct simulate --cluster C.json``): the machines, their
throughput on the simulated net and the network, and the time one compute group takes per update.

The JSON file::

    {"name": "...",                                  (optional)
     "machines": [{"name": "c4.4xlarge", "count": 32, "images_per_second": 8000}],
     "network": {"gbps": 1, "latency_ms": 0.1},
     "server": {"seconds_per_update": 0.002},         (optional; default 0)
     "jitter": "exponential"}                         (optional; or "none", or a list of measured
                                                       compute-time ratios to the mean)

``images_per_second`` is one machine's forward+backward throughput on the net being simulated
(measure it with ``cct time``). Machines are listed in order and cut into G groups of
K = N // G consecutive machines (the remainder idles, as Omnivore's run.py rounds down). A group's
update takes, as Omnivore's compute groups do:

    compute   = ceil(batch / K) / (images/s of the group's slowest machine)
    transfer  = 2 × model bytes × 8 / (gbps × 10⁹) + 2 × latency     (model down, gradient up;
                                                                      the group's machines in
                                                                      parallel)

and the parameter server applies updates one at a time, ``seconds_per_update`` each (its queue is
what saturates when many groups send at once).
"""
import json
import math
import os

from cct.errors import CctError


class ClusterSpec:
    """A parsed cluster description.

    Attributes:
        name: the description's name (or its file's).
        machines: one ``(name, images_per_second)`` per machine, in order.
        gbps, latency_ms: the network.
        server_seconds: the server's time to apply one update.
        jitter: ``"exponential"``, ``"none"`` or a list of compute-time ratios.
    """

    def __init__(self, data, source='<cluster>'):
        self.source = source
        if not isinstance(data, dict):
            raise CctError('%s: a cluster description is a JSON object' % source)
        unknown = set(data) - {'name', 'description', 'machines', 'network', 'server', 'jitter'}
        if unknown:
            raise CctError('%s: unknown key%s %s (known: name, description, machines, network, '
                           'server, jitter)' % (source, 's' if len(unknown) > 1 else '',
                                                ', '.join(sorted(unknown))))
        self.name = data.get('name') or os.path.splitext(os.path.basename(source))[0]
        self.machines = []
        machines = data.get('machines')
        if not isinstance(machines, list) or not machines:
            raise CctError('%s: "machines" must be a non-empty list' % source)
        for i, entry in enumerate(machines):
            where = '%s: machines[%d]' % (source, i)
            if not isinstance(entry, dict):
                raise CctError('%s must be an object' % where)
            count = _number(entry, 'count', where, integer=True, default=1)
            rate = _number(entry, 'images_per_second', where)
            if count < 1 or rate <= 0:
                raise CctError('%s: count must be at least 1 and images_per_second positive'
                               % where)
            self.machines += [(str(entry.get('name', 'machine%d' % i)), float(rate))] * count
        network = data.get('network')
        if not isinstance(network, dict):
            raise CctError('%s: "network" must be an object with gbps and latency_ms' % source)
        self.gbps = _number(network, 'gbps', source + ': network')
        self.latency_ms = _number(network, 'latency_ms', source + ': network', default=0.0)
        if self.gbps <= 0 or self.latency_ms < 0:
            raise CctError('%s: network gbps must be positive and latency_ms not negative'
                           % source)
        server = data.get('server', {})
        if not isinstance(server, dict):
            raise CctError('%s: "server" must be an object' % source)
        self.server_seconds = _number(server, 'seconds_per_update', source + ': server',
                                      default=0.0)
        self.jitter = data.get('jitter', 'exponential')
        if isinstance(self.jitter, list):
            if not self.jitter or not all(isinstance(v, (int, float)) and v > 0
                                          for v in self.jitter):
                raise CctError('%s: "jitter" as a list holds positive compute-time ratios'
                               % source)
        elif self.jitter not in ('exponential', 'none'):
            raise CctError('%s: "jitter" must be "exponential", "none" or a list of measured '
                           'ratios (got %r)' % (source, self.jitter))

    @property
    def machine_count(self):
        return len(self.machines)

    def group_counts(self):
        """The group counts worth trying: 1, 2, 4, ... up to one group per machine."""
        counts, g = [], 1
        while g < self.machine_count:
            counts.append(g)
            g *= 2
        return counts + [self.machine_count]

    def group_machines(self, groups, group):
        """The machines of ``group`` when the cluster is cut into ``groups`` groups."""
        self.check_groups(groups)
        size = self.machine_count // groups
        return self.machines[group * size:(group + 1) * size]

    def check_groups(self, groups):
        if not 1 <= groups <= self.machine_count:
            raise CctError('%s: %d compute groups need at least %d machines (the cluster has %d)'
                           % (self.source, groups, groups, self.machine_count))

    def compute_seconds(self, groups, group, batch):
        machines = self.group_machines(groups, group)
        share = math.ceil(batch / len(machines))
        return share / min(rate for _, rate in machines)

    def transfer_seconds(self, model_bytes):
        return 2 * model_bytes * 8 / (self.gbps * 1e9) + 2 * self.latency_ms / 1000

    def group_seconds(self, groups, group, batch, model_bytes):
        """Mean seconds of one update of ``group`` (compute and transfer, without the queue)."""
        return self.compute_seconds(groups, group, batch) + self.transfer_seconds(model_bytes)

    def jitter_factor(self, rng):
        """One sample of compute time / mean compute time."""
        if self.jitter == 'none':
            return 1.0
        if self.jitter == 'exponential':
            return float(rng.exponential(1.0))
        mean = sum(self.jitter) / len(self.jitter)
        return float(self.jitter[rng.integers(len(self.jitter))]) / mean


def _number(entry, key, where, integer=False, default=None):
    value = entry.get(key, default)
    kinds = (int,) if integer else (int, float)
    if value is None or isinstance(value, bool) or not isinstance(value, kinds):
        raise CctError('%s: "%s" must be %s (got %r)'
                       % (where, key, 'an integer' if integer else 'a number', value))
    return value


def load_cluster(path):
    """Read a cluster description JSON file; errors name the file and the key."""
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise CctError('cannot read the cluster description %s: %s' % (path, e.strerror or e)) \
            from None
    except json.JSONDecodeError as e:
        raise CctError('%s:%d: not valid JSON: %s' % (path, e.lineno, e.msg)) from None
    return ClusterSpec(data, os.fspath(path))
