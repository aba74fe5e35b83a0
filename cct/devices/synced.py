"""SyncedMemory (Caffe's syncedmem.cpp): one flat buffer on an accelerator with a host mirror, and
which of the two holds the newest values (the *head*).

``host()`` returns the host array after copying the device's values there if they are newer, and
makes the host the head, since a pycaffe script may write the array it gets (Caffe's
``mutable_cpu_data``). ``dev()`` copies the host back first if the host is the head, and makes the
device the head, since the layer that asked may write it (``mutable_gpu_data``). A new buffer
holds zeros on the device; the host mirror is allocated on first access.
"""
import numpy as np

HOST, DEVICE = 'host', 'device'


class SyncedMemory:
    """``size`` values of ``dtype`` on ``device``, mirrored on the host on demand."""

    __slots__ = ('device', 'size', 'dtype', 'head', '_host', '_dev')

    def __init__(self, device, size, dtype):
        self.device, self.size, self.dtype = device, int(size), np.dtype(dtype)
        self._dev = device.zeros((self.size,), self.dtype)
        self._host = None
        self.head = DEVICE

    @property
    def ndim(self):
        return 1

    def host(self):
        """The host array (flat), synced from the device; the host becomes the head."""
        if self._host is None:
            self._host = np.empty(self.size, self.dtype)
            self.device.to_host(self._dev, out=self._host)
        elif self.head == DEVICE:
            self.device.to_host(self._dev, out=self._host)
        self.head = HOST
        return self._host

    def dev(self):
        """The device array (flat), synced from the host; the device becomes the head."""
        if self.head == HOST:
            self.device.from_host(self._host, out=self._dev)
        self.head = DEVICE
        return self._dev

    def __repr__(self):
        return 'SyncedMemory(%d %s on %s, head %s)' % (self.size, self.dtype.name, self.device,
                                                      self.head)
