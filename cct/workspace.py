"""Scratch buffers shared by all layers of a process (column buffers, transposed GEMM operands).

Layers run one at a time, so one growing buffer per purpose serves every convolution: the lowering
costs the memory of the largest layer's partition, not the sum over layers (Caffe keeps one per
layer). Buffers only grow, so the steady-state training loop allocates nothing.
"""
import math
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


# Row lowering (cct.kernels.lowering) for vertical stride 1: 'auto' (where it pays, below),
# 'rows' (wherever it applies) or 'full' (never).
LOWERING = os.environ.get('CCT_LOWERING', 'auto')


def use_row_lowering(kernel_h, stride_h, k_rows, m_group, pixels):
    """Whether a convolution lowers only its horizontal taps (kh GEMMs of K = C/group*kw per
    image) instead of all of them (one GEMM of K = C/group*kh*kw per partition).

    The full lowering costs about one written value per ``m_group`` multiply-adds, so it hurts
    most with few outputs; the row lowering's per-image GEMMs lose a little when the image has few
    pixels or K is tiny. Measured here: rows win for CIFAR-10's convolutions (32-64 outputs, 8x8
    to 16x16 pixels: 1.4x on conv2/conv3) and CaffeNet's conv2 (128 outputs per group, 27x27),
    are even on CaffeNet's conv3-5 and lose 4-15% on GoogLeNet's 14x14 and 7x7 3x3 convolutions
    (208-384 outputs), and on CIFAR-10's conv1 (K = 3*5 = 15).
    """
    if stride_h != 1 or kernel_h == 1 or LOWERING == 'full':
        return False
    if LOWERING == 'rows':
        return True
    return k_rows >= 32 and (m_group <= 128 or pixels >= 576)


def scratch(purpose, shape, dtype):
    """A C-contiguous array of ``shape`` for ``purpose``, reusing (and growing) one flat buffer.

    The contents are undefined; two purposes never alias each other.
    """
    dtype = np.dtype(dtype)
    count = int(math.prod(shape))
    key = (purpose, dtype)
    buf = _buffers.get(key)
    if buf is None or buf.size < count:
        buf = _buffers[key] = np.empty(count, dtype)
    return buf[:count].reshape(shape)


def release():
    """Drop every scratch buffer (they are recreated on demand)."""
    _buffers.clear()
