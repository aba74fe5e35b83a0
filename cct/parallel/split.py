"""How a batch is cut across devices (CcT's batch proportions): the --devices and --split flags
read and checked, fractions rounded to whole images, and the ``auto`` split that measures each
device's throughput on the net and sets the shares from it.

CcT gives GPU i ``floor(proportion_i * B)`` images and the rest to the CPU; cct rounds every
device's share by largest remainder (ties to the earlier device), so the shares always add up to
the batch, and a device whose fraction rounds to no image sits the pass out.
"""
import math

from cct import devices as _devices
from cct.errors import CctError, DeviceError
from cct.log import logger


def parse_devices(spec):
    """The Devices named by ``spec`` ('cpu,opencl:0' or a list of names/Devices), in order.

    An unknown name raises DeviceError listing the devices there are; a device named twice, or
    fewer than one device, is an error.
    """
    if isinstance(spec, str):
        names = [part.strip() for part in spec.split(',')]
    else:
        names = list(spec)
    if not names or any(name == '' for name in names):
        raise DeviceError('--devices needs device names separated by commas, such as '
                          '"cpu,opencl:0" (got %r; devices here: %s)'
                          % (spec, ', '.join(_devices.device_names())))
    opened = [_devices.get_device(name) for name in names]
    seen = set()
    for device in opened:
        if str(device) in seen:
            raise DeviceError('--devices names %s twice (%r): each device holds one replica; '
                              'list each once' % (device, spec))
        seen.add(str(device))
    return opened


def parse_split(spec, count):
    """'auto' (or None/'') for the measured split, else the list of ``count`` fractions.

    Fractions must be numbers >= 0, one per device, adding up to 1 (to 1e-6 per device).
    """
    if spec is None or (isinstance(spec, str) and spec.strip() in ('', 'auto')):
        return 'auto'
    if isinstance(spec, str):
        try:
            fractions = [float(part) for part in spec.split(',')]
        except ValueError:
            raise CctError('--split takes "auto" or one fraction per device separated by '
                           'commas, such as "0.5,0.5" (got %r)' % spec) from None
    else:
        fractions = [float(value) for value in spec]
    if len(fractions) != count:
        raise CctError('--split %s gives %d fractions for %d devices (one per device in '
                       '--devices, in the same order)' % (_text(spec), len(fractions), count))
    if any(not math.isfinite(f) or f < 0 for f in fractions):
        raise CctError('--split %s: every fraction must be a number >= 0' % _text(spec))
    total = sum(fractions)
    if abs(total - 1.0) > 1e-6 * count:
        raise CctError('--split %s: the fractions add up to %g, not 1' % (_text(spec), total))
    return fractions


def _text(spec):
    return spec if isinstance(spec, str) else ','.join('%g' % value for value in spec)


def whole_images(fractions, batch):
    """``fractions`` of ``batch`` rounded to whole images by largest remainder (ties to the
    earlier device); the shares add up to ``batch``."""
    total = sum(fractions)
    exact = [batch * f / total for f in fractions]
    shares = [int(math.floor(value)) for value in exact]
    left = batch - sum(shares)
    order = sorted(range(len(fractions)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[:left]:
        shares[i] += 1
    return shares


def check_batch(batch, device_names):
    """A batch that cannot give each device an image is an error naming both counts."""
    if batch < len(device_names):
        raise CctError('a batch of %d image%s cannot be split across %d devices (%s): the batch '
                       'needs at least one image per device' % (
                           batch, '' if batch == 1 else 's', len(device_names),
                           ', '.join(device_names)))


class FixedSplit:
    """The shares --split fixes."""

    def __init__(self, fractions, names):
        self.fractions = list(fractions)
        self.names = names
        self.settled = True
        self._logged = None

    def shares(self, batch, key):
        shares = whole_images(self.fractions, batch)
        if self._logged != key:
            self._logged = key
            log_shares('fixed', self.names, shares)
        return shares

    def record(self, shares, busy, wall):
        """Fixed shares ignore the measurements."""


class AutoSplit:
    """Shares set from each device's measured throughput on the net, then checked by the clock.

    For each new input shape (``key``) the batch is first split evenly. Then, ``rounds`` times:
    one pass at the current shares runs unmeasured (kernel builds, allocations after a reshape),
    ``measure`` passes are timed, and the shares are set in proportion to each device's images
    per busy second (its time computing, not waiting for the others at a synchronisation);
    throughput depends on the share's size, hence the second round. Last, the proportional shares
    and the whole batch on the fastest device alone are each timed (one unmeasured pass, then
    ``measure`` passes' median wall time) and the faster is kept: where the devices share the
    same cores or the synchronisations cost more than the slow device adds, running it at all
    is a loss. Then the shares stay until the input shape changes.
    """

    def __init__(self, names, measure=2, rounds=2):
        self.names = names
        self.measure, self.rounds = measure, rounds
        self.key = None
        self.settled = False

    def shares(self, batch, key):
        if key != self.key:
            self.key, self.batch = key, batch
            self.current = whole_images([1.0] * len(self.names), batch)
            self.phase, self.round = 'throughput', 0
            self.trials, self.walls = [], []
            self.settled = False
            self._start_trial()
        return list(self.current)

    def _start_trial(self):
        self.passes = 0
        self.samples = []

    def record(self, shares, busy, wall):
        """Account one pass: ``busy[i]`` seconds computed by device i on ``shares[i]`` images,
        ``wall`` seconds for the whole pass."""
        if self.settled or shares != self.current:
            return
        self.passes += 1
        if self.passes == 1:
            return
        self.samples.append((list(busy), wall))
        if len(self.samples) < self.measure:
            return
        if self.phase == 'throughput':
            self._set_from_throughput()
        else:
            self._compare()
        self._start_trial()

    def _set_from_throughput(self):
        seconds = [sum(busy[i] for busy, _ in self.samples) for i in range(len(self.names))]
        rates = [len(self.samples) * images / spent if spent > 0 else 0.0
                 for images, spent in zip(self.current, seconds)]
        if sum(rates) > 0:
            self.current = whole_images(rates, self.batch)
        log_shares('auto, measured %s' % ', '.join(
            '%s %.1f images/s' % (name, rate) for name, rate in zip(self.names, rates)),
            self.names, self.current)
        self.round += 1
        if self.round < self.rounds:
            return
        fastest = max(range(len(rates)), key=lambda i: (rates[i], -i))
        alone = [self.batch if i == fastest else 0 for i in range(len(self.names))]
        self.trials = [list(self.current)] + ([alone] if alone != self.current else [])
        if len(self.trials) == 1:
            self.settled = True
            return
        self.phase = 'compare'

    def _compare(self):
        self.walls.append(sorted(wall for _, wall in self.samples)[len(self.samples) // 2])
        if len(self.walls) < len(self.trials):
            self.current = list(self.trials[len(self.walls)])
            return
        best = min(range(len(self.trials)), key=lambda i: (self.walls[i], i))
        self.current = list(self.trials[best])
        self.settled = True
        log_shares('auto, timed %s' % '; '.join(
            '%s: %.1f ms' % ('+'.join('%s %d' % (name, share) for name, share in
                                      zip(self.names, trial) if share), wall * 1e3)
            for trial, wall in zip(self.trials, self.walls)), self.names, self.current)


def log_shares(how, names, shares):
    logger.info('Hybrid split (%s): %s', how, ', '.join(
        '%s %d image%s' % (name, share, '' if share == 1 else 's')
        for name, share in zip(names, shares)))
