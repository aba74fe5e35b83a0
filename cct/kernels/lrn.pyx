"""Local response normalization forward/backward (Caffe's lrn_layer.cpp, CPU path) on (N, C, H, W).

Both regions share one shape: ``scale`` is a windowed sum of squares, ``y = x * scale**-beta``, and
``dx = dy * scale**-beta - ratio * x * window_sum(dy * y / scale)``.

* ACROSS_CHANNELS: the window is the ``size`` channels centred on c (zero beyond the edges); the
  sum runs as Caffe's does, adding the head channel and subtracting the tail one, so float32
  results round like Caffe's. Work is split across cores by (image, block of pixels); a block's
  scale is kept only while the block is worked on and backward recomputes it and its power, as
  Caffe's backward recomputes the power, so the layer stores nothing the size of its input.
* WITHIN_CHANNEL: the window is ``size x size`` in the plane, zero-padded; two separable running
  sums (rows, then columns). Work is split by plane.
"""
from cython.parallel cimport prange
from openmp cimport omp_get_max_threads, omp_get_thread_num
from libc.math cimport pow, powf

from cct.kernels.bounds cimport dims

ctypedef fused real:
    float
    double

cdef enum:
    PIXEL_BLOCK = 256


cdef int _check_lrn(str kernel, int size, tuple shape, tuple others) except -1:
    """An odd, positive window and every array shaped as the input (the kernels index them all by
    the input's shape)."""
    if size < 1 or size % 2 == 0:
        raise ValueError('%s: local_size must be odd and positive, got %d' % (kernel, size))
    for other in others:
        if other != shape:
            raise ValueError('%s: arrays of shape %s and %s' % (kernel, shape, other))
    return 0


cdef inline real _pow(real x, real y) noexcept nogil:
    # Caffe's caffe_powx is std::pow on the blob's type: powf for float.
    if real is float:
        return powf(x, y)
    else:
        return pow(x, y)


cdef void _window_scale(const real[:, :, ::1] bottom, Py_ssize_t n, Py_ssize_t start,
                        Py_ssize_t stop, int size, real a, real k, real *scale) noexcept nogil:
    """``scale[c*PIXEL_BLOCK + p - start] = k + a * sum(x[n, c - size//2 : c + size//2 + 1, p]**2)``
    for the pixels p of one block, with Caffe's running sum (add the head channel, subtract the
    tail one), so float32 results round like Caffe's."""
    cdef Py_ssize_t channels = bottom.shape[1], c, p, head, tail
    cdef int pre_pad = (size - 1) // 2
    cdef real value
    cdef real *row
    for p in range(start, stop):
        scale[p - start] = k
    for c in range(min(pre_pad + 1, channels)):
        for p in range(start, stop):
            value = bottom[n, c, p]
            scale[p - start] += a * value * value
    for c in range(1, channels):
        head = c + pre_pad
        tail = c - pre_pad - 1
        row = scale + c * PIXEL_BLOCK - start
        for p in range(start, stop):
            row[p] = row[p - PIXEL_BLOCK]
            if head < channels:
                value = bottom[n, head, p]
                row[p] += a * value * value
            if tail >= 0:
                value = bottom[n, tail, p]
                row[p] -= a * value * value


def block_scratch_size(channels):
    """Values per thread that ``cross_channel_forward``/``backward`` need as scratch."""
    return channels * PIXEL_BLOCK


def cross_channel_forward(const real[:, :, ::1] bottom, real[:, :, ::1] top, int size,
                          double alpha_over_size, double k, double beta, real[:, ::1] scratch):
    """``top = bottom * scale**-beta``, with
    ``scale[n, c] = k + alpha/size * sum(x[n, c - size//2 : c + size//2 + 1]**2)``.

    Arrays are viewed as (N, C, H*W). Work goes by (image, block of pixels); each block's scale
    lives only in its thread's row of ``scratch`` (``block_scratch_size`` values), and backward
    recomputes it (and its power) rather than keeping blobs as large as the input.
    """
    cdef Py_ssize_t num = bottom.shape[0], channels = bottom.shape[1], pixels = bottom.shape[2]
    cdef Py_ssize_t blocks = (pixels + PIXEL_BLOCK - 1) // PIXEL_BLOCK
    cdef Py_ssize_t task, n, c, p, start, stop
    cdef real a = <real>alpha_over_size, power = <real>-beta
    cdef real *scale
    _check_lrn('cross_channel_forward', size, dims(bottom.shape, 3), (dims(top.shape, 3),))
    _check_scratch(scratch, channels)
    for task in prange(num * blocks, nogil=True, schedule='static'):
        n = task // blocks
        start = (task % blocks) * PIXEL_BLOCK
        stop = min(start + PIXEL_BLOCK, pixels)
        scale = &scratch[omp_get_thread_num(), 0]
        _window_scale(bottom, n, start, stop, size, a, <real>k, scale)
        for c in range(channels):
            for p in range(start, stop):
                top[n, c, p] = bottom[n, c, p] * _pow(scale[c * PIXEL_BLOCK + p - start], power)


cdef int _check_scratch(real[:, ::1] scratch, Py_ssize_t channels) except -1:
    if scratch.shape[0] < omp_get_max_threads() or scratch.shape[1] < channels * PIXEL_BLOCK:
        raise ValueError('LRN: scratch needs %d rows of %d values'
                         % (omp_get_max_threads(), channels * PIXEL_BLOCK))
    return 0


def within_channel_scale(const real[:, :, :, ::1] bottom, real[:, :, :, ::1] rows,
                         real[:, :, :, ::1] scale, int size, double alpha_over_area):
    """``scale = 1 + alpha/size**2 * (size x size zero-padded box sum of x**2)``; ``rows`` is
    scratch of the same shape."""
    cdef Py_ssize_t num = bottom.shape[0], channels = bottom.shape[1]
    cdef Py_ssize_t plane
    cdef Py_ssize_t n, c
    cdef real a = <real>alpha_over_area
    _check_lrn('within_channel_scale', size, dims(bottom.shape, 4),
               (dims(rows.shape, 4), dims(scale.shape, 4)))
    for plane in prange(num * channels, nogil=True, schedule='static'):
        n = plane // channels
        c = plane % channels
        _box_sum(bottom, rows, scale, n, c, size, 1)
        _affine(scale, n, c, a)


def apply_scale(const real[::1] bottom, const real[::1] scale, real[::1] top, real[::1] factor,
                double beta):
    """``factor = scale**-beta`` and ``top = bottom * factor`` over flat arrays (WITHIN_CHANNEL).
    Caffe's backward raises every scale to the power again; cct's reuses ``factor``."""
    cdef Py_ssize_t i, count = bottom.shape[0]
    cdef real power = <real>-beta
    for i in prange(count, nogil=True, schedule='static'):
        factor[i] = _pow(scale[i], power)
        top[i] = bottom[i] * factor[i]


def cross_channel_backward(const real[:, :, ::1] bottom, const real[:, :, ::1] top,
                           const real[:, :, ::1] top_diff, real[:, :, ::1] bottom_diff, int size,
                           double alpha_over_size, double k, double beta, double cache_ratio,
                           real[:, ::1] scratch):
    """``dx = dy * scale**-beta - cache_ratio * x * channel_window_sum(dy * y / scale)``, each
    block's scale (and so its power) recomputed exactly as the forward made it.

    The window sum is first run into ``bottom_diff`` (the same head/tail scheme as the forward),
    then combined in place. Arrays are viewed as (N, C, H*W).
    """
    cdef Py_ssize_t num = bottom.shape[0], channels = bottom.shape[1], pixels = bottom.shape[2]
    cdef Py_ssize_t blocks = (pixels + PIXEL_BLOCK - 1) // PIXEL_BLOCK
    cdef Py_ssize_t task, n, c, p, start, stop, head, tail
    cdef int pre_pad = (size - 1) // 2
    cdef real ratio = <real>cache_ratio, power = <real>-beta
    cdef real *scale
    _check_lrn('cross_channel_backward', size, dims(bottom.shape, 3),
               (dims(top.shape, 3), dims(top_diff.shape, 3), dims(bottom_diff.shape, 3)))
    _check_scratch(scratch, channels)
    for task in prange(num * blocks, nogil=True, schedule='static'):
        n = task // blocks
        start = (task % blocks) * PIXEL_BLOCK
        stop = min(start + PIXEL_BLOCK, pixels)
        scale = &scratch[omp_get_thread_num(), 0] - start
        _window_scale(bottom, n, start, stop, size, <real>alpha_over_size, <real>k, scale + start)
        for p in range(start, stop):
            bottom_diff[n, 0, p] = 0
        for c in range(min(pre_pad + 1, channels)):
            for p in range(start, stop):
                bottom_diff[n, 0, p] += top_diff[n, c, p] * top[n, c, p] / \
                    scale[c * PIXEL_BLOCK + p]
        for c in range(1, channels):
            head = c + pre_pad
            tail = c - pre_pad - 1
            for p in range(start, stop):
                bottom_diff[n, c, p] = bottom_diff[n, c - 1, p]
                if head < channels:
                    bottom_diff[n, c, p] += top_diff[n, head, p] * top[n, head, p] / \
                        scale[head * PIXEL_BLOCK + p]
                if tail >= 0:
                    bottom_diff[n, c, p] -= top_diff[n, tail, p] * top[n, tail, p] / \
                        scale[tail * PIXEL_BLOCK + p]
        for c in range(channels):
            for p in range(start, stop):
                bottom_diff[n, c, p] = top_diff[n, c, p] * _pow(scale[c * PIXEL_BLOCK + p], power) \
                    - ratio * bottom[n, c, p] * bottom_diff[n, c, p]


def within_channel_backward(const real[:, :, :, ::1] bottom, const real[:, :, :, ::1] top,
                            const real[:, :, :, ::1] scale, const real[:, :, :, ::1] factor,
                            const real[:, :, :, ::1] top_diff, real[:, :, :, ::1] ratios,
                            real[:, :, :, ::1] rows, real[:, :, :, ::1] bottom_diff, int size,
                            double cache_ratio):
    """``dx = dy * factor - cache_ratio * x * box_sum(dy * y / scale)`` (``factor`` the forward's
    ``scale**-beta``); ``ratios`` and ``rows`` are scratch of the blobs' shape."""
    cdef Py_ssize_t num = bottom.shape[0], channels = bottom.shape[1]
    cdef Py_ssize_t height = bottom.shape[2], width = bottom.shape[3]
    cdef Py_ssize_t plane, n, c, h, w
    cdef real ratio = <real>cache_ratio
    _check_lrn('within_channel_backward', size, dims(bottom.shape, 4),
               (dims(top.shape, 4), dims(scale.shape, 4), dims(factor.shape, 4),
                dims(top_diff.shape, 4), dims(ratios.shape, 4), dims(rows.shape, 4),
                dims(bottom_diff.shape, 4)))
    for plane in prange(num * channels, nogil=True, schedule='static'):
        n = plane // channels
        c = plane % channels
        for h in range(height):
            for w in range(width):
                ratios[n, c, h, w] = top_diff[n, c, h, w] * top[n, c, h, w] / scale[n, c, h, w]
        _box_sum(ratios, rows, bottom_diff, n, c, size, 0)
        for h in range(height):
            for w in range(width):
                bottom_diff[n, c, h, w] = \
                    top_diff[n, c, h, w] * factor[n, c, h, w] - \
                    ratio * bottom[n, c, h, w] * bottom_diff[n, c, h, w]


cdef inline void _box_sum(const real[:, :, :, ::1] source, real[:, :, :, ::1] rows,
                          real[:, :, :, ::1] out, Py_ssize_t n, Py_ssize_t c, int size,
                          bint square) noexcept nogil:
    """``out[n, c]`` = zero-padded size x size box sum of ``source[n, c]`` (squared when
    ``square``), through running sums along rows into ``rows`` then down columns."""
    cdef Py_ssize_t height = source.shape[2], width = source.shape[3]
    cdef Py_ssize_t h, w, pre_pad = (size - 1) // 2
    cdef real total, value
    for h in range(height):
        total = 0
        for w in range(min(pre_pad + 1, width)):
            value = source[n, c, h, w]
            total = total + (value * value if square else value)
        rows[n, c, h, 0] = total
        for w in range(1, width):
            if w + pre_pad < width:
                value = source[n, c, h, w + pre_pad]
                total = total + (value * value if square else value)
            if w - pre_pad - 1 >= 0:
                value = source[n, c, h, w - pre_pad - 1]
                total = total - (value * value if square else value)
            rows[n, c, h, w] = total
    for w in range(width):
        total = 0
        for h in range(min(pre_pad + 1, height)):
            total = total + rows[n, c, h, w]
        out[n, c, 0, w] = total
        for h in range(1, height):
            if h + pre_pad < height:
                total = total + rows[n, c, h + pre_pad, w]
            if h - pre_pad - 1 >= 0:
                total = total - rows[n, c, h - pre_pad - 1, w]
            out[n, c, h, w] = total


cdef inline void _affine(real[:, :, :, ::1] scale, Py_ssize_t n, Py_ssize_t c,
                         real alpha) noexcept nogil:
    cdef Py_ssize_t h, w
    for h in range(scale.shape[2]):
        for w in range(scale.shape[3]):
            scale[n, c, h, w] = 1 + alpha * scale[n, c, h, w]
