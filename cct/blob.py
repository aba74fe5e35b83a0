"""Blob: a named N-d array pair (``data``, ``diff``) of one dtype, mirroring Caffe's blob.hpp.

Storage is a flat buffer with a capacity, as in Caffe: reshaping to a smaller or equal count keeps the
buffer (and its values); a larger count allocates a new zeroed one. ``diff`` is allocated on first use,
so inference nets never pay for gradients. ``data``/``diff`` return writable views in the blob's
current shape, which is what pycaffe scripts index into.

A blob lives on one device. On the CPU its arrays are the host arrays (``dev_data is data``). On an
accelerator (``DeviceBlob``) each buffer is a ``SyncedMemory``: ``data``/``diff`` are host numpy
views synced from the device on access, and ``dev_data``/``dev_diff`` (what layers use) copy the
host back first if a script may have written it, as Caffe's SyncedMemory does.
"""
import math

import numpy as np

from cct.devices import cpu
from cct.devices.synced import SyncedMemory
from cct.errors import OutOfMemoryError

# Counts are int64 (numpy's and Caffe's Blob::count are signed): a product beyond wraps around.
_MAX_COUNT = 2 ** 63 - 1


def _as_shape(dims):
    if len(dims) == 1 and not isinstance(dims[0], (int, np.integer)):
        dims = tuple(dims[0])
    shape = tuple(int(d) for d in dims)
    if any(d < 0 for d in shape):
        raise ValueError('blob dimensions must be non-negative, got %s' % (shape,))
    if math.prod(shape) > _MAX_COUNT:
        raise ValueError('blob dimensions %s hold %d values, more than a 64-bit count holds'
                         % (shape, math.prod(shape)))
    return shape


def _zeros(count, dtype, blob, shape):
    """A zeroed buffer for ``blob``; failing, an OutOfMemoryError saying how many bytes (the net
    adds which layer and blob)."""
    try:
        return np.zeros(count, dtype)
    except (MemoryError, ValueError) as error:
        # numpy raises ValueError ("array is too big") past its own address-space limit.
        nbytes = count * dtype.itemsize
        raise OutOfMemoryError('cannot allocate %d bytes (%.1f GiB) for a blob of shape %s: %s'
                               % (nbytes, nbytes / 2 ** 30, shape_string(shape), error),
                               blob=blob, nbytes=nbytes, shape=shape) from None


def shape_string(shape):
    """Caffe's ``shape_string()``: ``"64 3 227 227 (9916992)"``."""
    count = int(np.prod(shape, dtype=np.int64))
    return ' '.join(str(d) for d in shape) + (' ' if shape else '') + '(%d)' % count


class Blob:
    """Data and gradient arrays of one shape.

    Args:
        shape: the initial dimensions (any number of axes; a scalar blob has shape ``()``).
        dtype: ``numpy.float32`` (training) or ``numpy.float64`` (gradient checks).
    """

    __slots__ = ('_shape', '_count', '_data', '_diff', '_data_view', '_diff_view', 'dtype',
                 'device', '__weakref__')

    def __new__(cls, *shape, dtype=np.float32, device=None):
        if cls is Blob and device is not None and not device.host:
            cls = DeviceBlob
        return object.__new__(cls)

    def __init__(self, *shape, dtype=np.float32, device=None):
        self.dtype = np.dtype(dtype)
        self.device = device if device is not None else cpu.open_device(0)
        self._shape = _as_shape(shape) if shape else (0,)
        self._count = math.prod(self._shape)
        self._data = self._new_buffer(self._count)
        self._diff = None
        self._data_view = self._diff_view = None

    def _new_buffer(self, count, shape=None):
        return _zeros(count, self.dtype, self, self._shape if shape is None else shape)

    @property
    def shape(self):
        return self._shape

    @property
    def count(self):
        return self._count

    @property
    def capacity(self):
        """Values the data buffer holds (at least ``count``; reshaping smaller keeps it)."""
        return self._data.size

    @property
    def dev_data(self):
        """The data as an array of the blob's device, in the blob's shape (what layers compute
        on; on the CPU the same array as ``data``)."""
        return self.data

    @property
    def dev_diff(self):
        """The diff as an array of the blob's device (on the CPU the same array as ``diff``)."""
        return self.diff

    @property
    def ndim(self):
        return len(self._shape)

    num_axes = ndim

    def legacy_shape(self, index):
        """Caffe's LegacyShape: axis ``index`` (negative from the end), 1 beyond the real axes."""
        if index >= len(self._shape) or index < -len(self._shape):
            return 1
        return self._shape[index]

    @property
    def num(self):
        return self.legacy_shape(0)

    @property
    def channels(self):
        return self.legacy_shape(1)

    @property
    def height(self):
        return self.legacy_shape(2)

    @property
    def width(self):
        return self.legacy_shape(3)

    def count_range(self, start, end=None):
        """Product of the dimensions in [start, end) (Caffe's ``count(start, end)``)."""
        return int(math.prod(self._shape[start:end]))

    def canonical_axis(self, axis):
        """Caffe's CanonicalAxisIndex: a negative axis counts from the end; out of range raises."""
        if not -len(self._shape) <= axis < max(len(self._shape), 1):
            raise ValueError('axis %d out of range for %d-D blob with shape %s'
                             % (axis, len(self._shape), shape_string(self._shape)))
        return axis % len(self._shape) if self._shape else 0

    def reshape(self, *shape):
        """Change the shape; the buffer grows (zeroed) only when the new count exceeds its capacity."""
        shape = _as_shape(shape)
        if shape == self._shape:
            return
        count = math.prod(shape)
        if count > self._data.size:
            self._data = self._new_buffer(count, shape)
            self._diff = None
        self._shape, self._count = shape, count
        self._data_view = self._diff_view = None

    def reshape_like(self, other):
        self.reshape(other.shape)

    @property
    def data(self):
        view = self._data_view
        if view is None:
            view = self._data_view = self._data[:self._count].reshape(self._shape)
        return view

    @data.setter
    def data(self, value):
        self.data[...] = value

    @property
    def diff(self):
        view = self._diff_view
        if view is None:
            if self._diff is None or self._diff.size < self._data.size:
                self._diff = self._new_buffer(self._data.size)
            view = self._diff_view = self._diff[:self._count].reshape(self._shape)
        return view

    @diff.setter
    def diff(self, value):
        self.diff[...] = value

    @property
    def has_diff(self):
        """True once a gradient buffer exists (it is allocated on first use)."""
        return self._diff is not None

    def release_diff(self):
        """Drop the diff buffer (one shared with other blobs): the next use allocates a zeroed
        one of the blob's own."""
        self._diff = None
        self._diff_view = None

    def share_data(self, other):
        """Use ``other``'s data buffer (Caffe's ShareData); counts must agree."""
        if self._count != other._count:
            raise ValueError('cannot share data of blob %s with blob %s: counts differ'
                             % (shape_string(other.shape), shape_string(self.shape)))
        self._data = other._data
        self._data_view = None

    def share_diff(self, other):
        """Use ``other``'s diff buffer (Caffe's ShareDiff); counts must agree."""
        if self._count != other._count:
            raise ValueError('cannot share diff of blob %s with blob %s: counts differ'
                             % (shape_string(other.shape), shape_string(self.shape)))
        other.diff  # allocate it so both blobs hold the same buffer
        self._diff = other._diff
        self._diff_view = None

    def use_data_buffer(self, flat):
        """Keep the data in ``flat``, a 1-D array of the blob's dtype of at least ``capacity``
        values (Caffe's ``set_cpu_data``); the values already in ``flat`` become the blob's."""
        if flat.ndim != 1 or flat.dtype != self.dtype or flat.size < self._data.size:
            raise ValueError('a data buffer for blob %s must be a 1-D %s array of at least %d '
                             'values' % (shape_string(self.shape), self.dtype.name,
                                         self._data.size))
        self._data = flat
        self._data_view = None

    def use_diff_buffer(self, flat):
        """Keep the diff in ``flat``, a 1-D array of the blob's dtype of at least ``capacity``
        values (several blobs whose diffs are never alive at once can use one); a host array on
        the CPU, a ``SyncedMemory`` of the blob's device elsewhere."""
        if flat.ndim != 1 or flat.dtype != self.dtype or flat.size < self._data.size:
            raise ValueError('a diff buffer for blob %s must be a 1-D %s array of at least %d '
                             'values' % (shape_string(self.shape), self.dtype.name,
                                         self._data.size))
        self._diff = flat
        self._diff_view = None

    def shares_data_with(self, other):
        return self._data is other._data

    def __repr__(self):
        return 'Blob(%s, %s)' % (shape_string(self._shape), self.dtype.name)


class DeviceBlob(Blob):
    """A Blob on an accelerator: each buffer is a ``SyncedMemory`` (device array plus host
    mirror); ``data``/``diff`` sync to the host, ``dev_data``/``dev_diff`` to the device."""

    __slots__ = ('_dev_data_view', '_dev_diff_view')

    def __init__(self, *shape, dtype=np.float32, device=None):
        self._dev_data_view = self._dev_diff_view = None
        super().__init__(*shape, dtype=dtype, device=device)

    def _new_buffer(self, count, shape=None):
        return SyncedMemory(self.device, count, self.dtype)

    def _forget_views(self):
        self._data_view = self._diff_view = None
        self._dev_data_view = self._dev_diff_view = None

    def reshape(self, *shape):
        old = self._shape
        super().reshape(*shape)
        if self._shape != old:
            self._forget_views()

    @property
    def data(self):
        host = self._data.host()
        view = self._data_view
        if view is None:
            view = self._data_view = host[:self._count].reshape(self._shape)
        return view

    @data.setter
    def data(self, value):
        self.data[...] = value

    def _diff_memory(self):
        if self._diff is None or self._diff.size < self._data.size:
            self._diff = self._new_buffer(self._data.size)
            self._diff_view = self._dev_diff_view = None
        return self._diff

    @property
    def diff(self):
        host = self._diff_memory().host()
        view = self._diff_view
        if view is None:
            view = self._diff_view = host[:self._count].reshape(self._shape)
        return view

    @diff.setter
    def diff(self, value):
        self.diff[...] = value

    @property
    def dev_data(self):
        array = self._data.dev()
        view = self._dev_data_view
        if view is None:
            view = self._dev_data_view = array[:self._count].reshape(self._shape)
        return view

    @property
    def dev_diff(self):
        array = self._diff_memory().dev()
        view = self._dev_diff_view
        if view is None:
            view = self._dev_diff_view = array[:self._count].reshape(self._shape)
        return view

    def share_data(self, other):
        super().share_data(other)
        self._dev_data_view = None

    def share_diff(self, other):
        if self._count != other._count:
            raise ValueError('cannot share diff of blob %s with blob %s: counts differ'
                             % (shape_string(other.shape), shape_string(self.shape)))
        self._diff = other._diff_memory()
        self._diff_view = self._dev_diff_view = None

    def release_diff(self):
        super().release_diff()
        self._dev_diff_view = None

    def use_data_buffer(self, flat):
        raise ValueError('blob %s lives on %s: its data is device memory, not a host buffer '
                         '(use_data_buffer is for CPU blobs)' % (shape_string(self.shape),
                                                                 self.device))

    def use_diff_buffer(self, flat):
        if not isinstance(flat, SyncedMemory) or flat.size < self._data.size:
            raise ValueError('a diff buffer for blob %s on %s must be a SyncedMemory of at least '
                             '%d values' % (shape_string(self.shape), self.device,
                                            self._data.size))
        self._diff = flat
        self._diff_view = self._dev_diff_view = None

    def __repr__(self):
        return 'Blob(%s, %s, %s)' % (shape_string(self._shape), self.dtype.name, self.device)


class BlobVec(list):
    """A layer's list of parameter blobs; ``add_blob(*shape)`` is pycaffe's way to append one."""

    def __init__(self, blobs=(), dtype=np.float32, device=None):
        super().__init__(blobs)
        self.dtype = dtype
        self.device = device

    def add_blob(self, *shape):
        blob = Blob(*shape, dtype=self.dtype, device=self.device)
        self.append(blob)
        return blob
