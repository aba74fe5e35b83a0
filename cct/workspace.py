"""Scratch buffers shared by all layers of a process (column buffers, transposed GEMM operands).

Layers run one at a time, so one growing buffer per purpose serves every convolution: the lowering
costs the memory of the largest layer's partition, not the sum over layers (Caffe keeps one per
layer). Buffers only grow, so the steady-state training loop allocates nothing.
"""
import collections
import functools
import math
import os

import numpy as np

_buffers = {}

# CcT partitions: each thread lowers the images of one partition into its own column buffer and
# runs one GEMM per group on it. Measured here, the smallest partition whose GEMMs still have this
# many multiply-adds is the fastest (the columns stay in cache), so that is what is chosen ...
GEMM_MIN_MACS = int(float(os.environ.get('CCT_GEMM_MACS', str(1 << 22))))
# ... and whose GEMMs are at least this many output columns wide (images x output pixels): one
# 7x7 image (ResNet-50's res5, 49 columns) leaves the BLAS's register tiles half empty; 4 images
# per GEMM took its 3x3, 1x1 and strided 1x1 products 8-16% faster on a 2-core Zen-4 EPYC ...
GEMM_MIN_COLUMNS = int(os.environ.get('CCT_GEMM_COLUMNS', '192'))
# ... as long as one thread's column buffer stays under this size (MiB).
LOWERING_BUDGET_BYTES = int(float(os.environ.get('CCT_LOWERING_MB', '16')) * (1 << 20))


def partition_size(num, bytes_per_image, macs_per_image, threads, pixels=None):
    """Images per CcT partition: enough for GEMMs of ``GEMM_MIN_MACS`` multiply-adds and (given
    the output ``pixels`` per image, where one image has that many) ``GEMM_MIN_COLUMNS`` columns,
    at most what the lowering budget holds, and no more than keeps every thread busy (at least
    1)."""
    large_enough = -(-GEMM_MIN_MACS // max(macs_per_image, 1))
    if pixels and large_enough == 1:   # big layers only: the small nets' partitions stay tuned
        large_enough = max(large_enough, -(-GEMM_MIN_COLUMNS // pixels))
    budget = LOWERING_BUDGET_BYTES // max(bytes_per_image, 1)
    size = min(large_enough, budget, -(-num // max(threads, 1)))
    return int(max(1, size))


# How convolutions are lowered (cct.kernels.lowering): 'auto' (where each pays, below), or one
# of 'full', 'rows' and 'panels' for every product that can take it.
LOWERING = os.environ.get('CCT_LOWERING', 'auto')

# The three lowered products of a convolution layer (LoweredConvolution's forward_gemm,
# backward_gemm and weight_gemm), each 'full', 'rows' or 'panels'.
Lowering = collections.namedtuple('Lowering', 'forward data weights')


@functools.lru_cache(maxsize=None)
def _sysfs_l2_bytes():
    try:
        with open('/sys/devices/system/cpu/cpu0/cache/index2/size') as f:
            text = f.read().strip().upper()
        scale = {'K': 1024, 'M': 1 << 20}.get(text[-1:], 1)
        return int(text.rstrip('KM')) * scale
    except (OSError, ValueError):
        return 512 * 1024


def l2_bytes():
    """One core's L2 cache in bytes (Linux's sysfs; CCT_L2_KB overrides; 512 KiB if unknown)."""
    if os.environ.get('CCT_L2_KB'):
        return int(float(os.environ['CCT_L2_KB']) * 1024)
    return _sysfs_l2_bytes()


# cct's panel kernels (conv_panels.h) compute on vectors of this many bits.
PANEL_BITS = 256


@functools.lru_cache(maxsize=None)
def _cpuinfo_vector_bits():
    try:
        with open('/proc/cpuinfo') as f:
            flags = next((line.split(':', 1)[1].split() for line in f
                          if line.startswith('flags')), [])
    except OSError:
        flags = []
    return 512 if 'avx512f' in flags else 256 if 'avx' in flags else 128


def vector_bits():
    """The CPU's widest float vectors in bits, as it reports them (/proc/cpuinfo's flags: 512 with
    AVX-512, 256 with AVX, else 128); CCT_VECTOR_BITS overrides."""
    if os.environ.get('CCT_VECTOR_BITS'):
        return int(os.environ['CCT_VECTOR_BITS'])
    return _cpuinfo_vector_bits()


def choose_lowering(kernel_h, stride_h, k_rows, m_group, col_hw, panels):
    """How each product of a convolution is lowered: a ``Lowering`` of 'full', 'rows', 'panels'.

    'full' lowers all kh*kw taps (one GEMM of K = C/group*kh*kw per partition), about one
    written value per ``m_group`` multiply-adds. With vertical stride 1 the other two lower only
    the horizontal taps (``k_rows`` = C/group*kw per column): 'rows' runs kh GEMMs per image on
    windows of that buffer; 'panels' lays it out in panels of one vector of output columns and
    runs cct's own register-blocked kernels on it (``panels``: kernels.panel_sizes of the layer's
    group, None when they do not apply).

    Measured here (2 Zen-1 cores), rows beat full for CIFAR-10's conv2/conv3 (1.4x), CaffeNet's
    conv2 and (K = 576-768 over 13x13) conv3-5 (2-6%), not for thin K (CIFAR-10's conv1, K = 15)
    nor GoogLeNet's 14x14 (K up to 480) and 7x7 3x3s (4-15%). Panels
    beat both while one image's panels and the packed weights stay in L2 (they have no cache
    blocking: CaffeNet's layers lose 10%) and the output width wastes at most an eighth of the
    lanes: forward 10-20% faster on CIFAR-10's and LeNet's layers; the data gradient where its
    blocks of panels run no more kernel rows than the GEMMs (padded layers: CIFAR-10's; LeNet's
    unpadded conv2 loses 10%); the weight gradient where K is too thin for rows (conv1s: 20-35%)
    or the outputs fill whole blocks of 4 vectors (CIFAR-10's conv2 20%, conv3 even; LeNet's
    conv2, 50 outputs, loses 8%). The panels' kernels use 256-bit vectors, which a CPU reporting
    wider ones (AVX-512) runs as well: on a 2-core Zen-4 EPYC they beat the GEMMs there too
    (CIFAR-10 quick 51 -> 45 ms per iteration), once built with the generic tuning (setup.py);
    there rows take thin K too.
    """
    if stride_h != 1 or kernel_h == 1 or LOWERING == 'full':
        return Lowering('full', 'full', 'full')
    if LOWERING in ('rows', 'panels'):
        return Lowering(LOWERING, LOWERING, LOWERING)
    pixels = col_hw[0] * col_hw[1]
    wide = vector_bits() > PANEL_BITS
    # Thin K: the rows' GEMMs of K = k_rows lose to one of kh*k_rows on 256-bit vectors (Zen-1),
    # but with 512-bit ones the GEMM is cheap beside the full lowering's kh-fold writes (2-core
    # Zen-4 EPYC, fastest of 3 alternate runs, forward + backward: CIFAR-10's conv1, K = 15,
    # 13.0 -> 7.3 ms; LeNet's, K = 5, 1.7 -> 1.1 ms), so there rows take any K.
    min_k_rows = 1 if wide else 32
    gemm = 'rows' if k_rows >= min_k_rows and (m_group <= 128 or pixels >= 576 or
                                               (k_rows >= 512 and pixels >= 144)) else 'full'
    if panels is None:
        return Lowering(gemm, gemm, gemm)
    lanes = panels['lanes']
    itemsize = 32 // lanes
    width = -(-col_hw[1] // lanes) * lanes
    working_set = (panels['r'] + max(panels['forward_weights'], panels['backward_weights'])) * \
        itemsize
    fits = width * 8 <= col_hw[1] * 9 and working_set * 4 <= l2_bytes() * 3
    return Lowering('panels' if fits else gemm,
                    'panels' if fits and panels['data_work'] <= panels['rows_work'] else gemm,
                    'panels' if fits and (gemm == 'full' or panels['weight_rows'] == 3)
                    else gemm)


# Depthwise products under 'auto' take the direct kernels (cct/kernels/depthwise.pyx);
# CCT_DEPTHWISE=0 lowers them as any other group (the GEMM per channel Caffe runs), for comparisons.
DEPTHWISE = os.environ.get('CCT_DEPTHWISE', '1') != '0'


def depthwise(image_channels, group):
    """Whether a product whose ``group``s each read one of ``image_channels`` channels runs the
    direct depthwise kernels: under the 'auto' policy (a forced lowering applies to every layer),
    unless CCT_DEPTHWISE=0, and not for one group (a single-channel input such as LeNet's, where
    the tuned lowerings stay)."""
    return DEPTHWISE and LOWERING == 'auto' and group > 1 and group == image_channels


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
