"""Scratch buffers shared by all layers of a process (column buffers, transposed GEMM operands).

Layers run one at a time, so one growing buffer per purpose serves every convolution: the lowering
costs the memory of the largest layer's partition, not the sum over layers (Caffe keeps one per
layer). Buffers only grow, so the steady-state training loop allocates nothing.
"""
import os

import numpy as np

_buffers = {}

# CcT partitions a batch so one column buffer stays under this size (MiB).
LOWERING_BUDGET_BYTES = int(float(os.environ.get('CCT_LOWERING_MB', '64')) * (1 << 20))


def scratch(purpose, shape, dtype):
    """A C-contiguous array of ``shape`` for ``purpose``, reusing (and growing) one flat buffer.

    The contents are undefined; two purposes never alias each other.
    """
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    key = (purpose, dtype)
    buf = _buffers.get(key)
    if buf is None or buf.size < count:
        buf = _buffers[key] = np.empty(count, dtype)
    return buf[:count].reshape(shape)


def release():
    """Drop every scratch buffer (they are recreated on demand)."""
    _buffers.clear()
