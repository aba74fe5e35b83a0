"""A stand-in accelerator for tests that need no OpenCL: the CPU device's primitives on numpy arrays
that are *not* the blobs' host arrays, so every transfer, head change and layer path of a real
accelerator is exercised (and a layer that read stale host values would give wrong numbers)."""
import numpy as np

from cct.devices.cpu import CPUDevice


class MirrorDevice(CPUDevice):
    """The CPU's arithmetic behind an accelerator's interface: ``host`` is False, transfers copy,
    and it counts them."""

    kind = 'mirror'
    host = False

    def __init__(self, index=0, lacking=()):
        super().__init__(index)
        self.lacking = set(lacking)
        self.uploads = self.downloads = 0

    def supports(self, primitive, op=None):
        if primitive in self.lacking or (op is not None and op in self.lacking):
            return False
        return super().supports(primitive, op)

    def seed(self, seed):
        """Its draws come from the process generator the solver has already seeded."""

    def describe(self):
        return {'name': 'mirror of the CPU', 'memory': None, 'compute_units': 1}

    def from_host(self, host, out=None):
        self.uploads += 1
        if out is None:
            return np.array(host, copy=True, order='C')
        out.reshape(-1)[...] = np.asarray(host).reshape(-1)
        return out

    def to_host(self, array, out=None):
        self.downloads += 1
        return super().to_host(array, out)
