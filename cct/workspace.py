"""Scratch buffers shared by all layers of a process (column buffers, transposed GEMM operands).

Layers run one at a time, so one growing buffer per purpose serves every convolution: the lowering
costs the memory of the largest layer's partition, not the sum over layers (Caffe keeps one per
layer). Buffers only grow, so the steady-state training loop allocates nothing.
"""
import os

import numpy as np

_buffers = {}

# CcT partitions: each thread lowers the images of one partition into its own column buffer and
# runs one GEMM per group on it. Measured here, the smallest partition whose GEMMs still have this
# many multiply-adds is the fastest (the columns stay in cache), so that is what is chosen ...
GEMM_MIN_MACS = int(float(os.environ.get('CCT_GEMM_MACS', str(1 << 22))))
# ... as long as one thread's column buffer stays under this size (MiB).
LOWERING_BUDGET_BYTES = int(float(os.environ.get('CCT_LOWERING_MB', '16')) * (1 << 20))


def partition_size(num, bytes_per_image, macs_per_image, threads):
    """Images per CcT partition: enough for GEMMs of ``GEMM_MIN_MACS`` multiply-adds, at most what
    the lowering budget holds, and no more than keeps every thread busy (at least 1)."""
    large_enough = -(-GEMM_MIN_MACS // max(macs_per_image, 1))
    budget = LOWERING_BUDGET_BYTES // max(bytes_per_image, 1)
    size = min(large_enough, budget, -(-num // max(threads, 1)))
    return int(max(1, size))


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
