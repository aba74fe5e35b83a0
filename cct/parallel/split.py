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

    def record(self, shares, busy):
        """Fixed shares ignore the measurements."""


class AutoSplit:
    """Shares in proportion to each device's measured throughput on the net.

    For each new input shape (``key``), the batch is first split evenly: ``warmup`` passes run
    unmeasured (kernel builds, allocations), then ``measure`` passes are timed; the shares are
    set in proportion to each device's images per busy second (its time computing, not waiting
    for the others at a synchronisation). Throughput depends on the share's size, so the new
    shares are measured ``measure`` passes more and set once again; then they stay.
    """

    def __init__(self, names, warmup=1, measure=2, rounds=2):
        self.names = names
        self.warmup, self.measure, self.rounds = warmup, measure, rounds
        self.key = None
        self.settled = False

    def shares(self, batch, key):
        if key != self.key:
            self.key, self.batch = key, batch
            self.current = whole_images([1.0] * len(self.names), batch)
            self.round, self.passes = 0, 0
            self.images = [0.0] * len(self.names)
            self.seconds = [0.0] * len(self.names)
            self.settled = False
        return list(self.current)

    def record(self, shares, busy):
        """Account one pass: ``busy[i]`` seconds computed by device i on ``shares[i]`` images."""
        if self.settled or shares != self.current:
            return
        self.passes += 1
        if self.round == 0 and self.passes <= self.warmup:
            return
        for i, (images, seconds) in enumerate(zip(shares, busy)):
            self.images[i] += images
            self.seconds[i] += seconds
        if self.passes < (self.warmup if self.round == 0 else 0) + self.measure:
            return
        rates = [images / seconds if seconds > 0 else 0.0
                 for images, seconds in zip(self.images, self.seconds)]
        if sum(rates) > 0:
            self.current = whole_images(rates, self.batch)
        self.round += 1
        self.passes = 0
        self.images = [0.0] * len(self.names)
        self.seconds = [0.0] * len(self.names)
        if self.round >= self.rounds:
            self.settled = True
        log_shares('auto, measured %s' % ', '.join('%s %.1f images/s' % (name, rate) for
                                                   name, rate in zip(self.names, rates)),
                   self.names, self.current)


def log_shares(how, names, shares):
    logger.info('Hybrid split (%s): %s', how, ', '.join(
        '%s %d image%s' % (name, share, '' if share == 1 else 's')
        for name, share in zip(names, shares)))
