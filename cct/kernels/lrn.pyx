"""Local response normalization forward/backward (Caffe's lrn_layer.cpp, CPU path) on (N, C, H, W).

Both regions share one shape: ``scale`` is a windowed sum of squares, ``y = x * scale**-beta``, and
``dx = dy * scale**-beta - ratio * x * window_sum(dy * y / scale)``.

* ACROSS_CHANNELS: the window is the ``size`` channels centred on c (zero beyond the edges); the sum
  runs as Caffe's does, adding the head channel and subtracting the tail one, so float32 results round
  like Caffe's. Work is split across cores by (image, block of pixels).
* WITHIN_CHANNEL: the window is ``size x size`` in the plane, zero-padded; two separable running sums
  (rows, then columns). Work is split by plane.
"""
from cython.parallel cimport prange
from libc.math cimport pow, powf

ctypedef fused real:
    float
    double

cdef enum:
    PIXEL_BLOCK = 256


cdef inline real _pow(real x, real y) noexcept nogil:
    # Caffe's caffe_powx is std::pow on the blob's type: powf for float.
    if real is float:
        return powf(x, y)
    else:
        return pow(x, y)


def cross_channel_scale(const real[:, :, ::1] bottom, real[:, :, ::1] scale, int size,
                        double alpha_over_size, double k):
    """``scale[n, c] = k + alpha/size * sum(x[n, c - size//2 : c + size//2 + 1]**2)``.

    Arrays are viewed as (N, C, H*W).
    """
    cdef Py_ssize_t num = bottom.shape[0], channels = bottom.shape[1], pixels = bottom.shape[2]
    cdef Py_ssize_t blocks = (pixels + PIXEL_BLOCK - 1) // PIXEL_BLOCK
    cdef Py_ssize_t task, n, c, p, start, stop, head, tail
    cdef int pre_pad = (size - 1) // 2
    cdef real a = <real>alpha_over_size
    cdef real value
    for task in prange(num * blocks, nogil=True, schedule='static'):
        n = task // blocks
        start = (task % blocks) * PIXEL_BLOCK
        stop = min(start + PIXEL_BLOCK, pixels)
        for p in range(start, stop):
            scale[n, 0, p] = <real>k
        for c in range(min(pre_pad + 1, channels)):
            for p in range(start, stop):
                value = bottom[n, c, p]
                scale[n, 0, p] += a * value * value
        for c in range(1, channels):
            head = c + pre_pad
            tail = c - pre_pad - 1
            for p in range(start, stop):
                scale[n, c, p] = scale[n, c - 1, p]
                if head < channels:
                    value = bottom[n, head, p]
                    scale[n, c, p] += a * value * value
                if tail >= 0:
                    value = bottom[n, tail, p]
                    scale[n, c, p] -= a * value * value


def within_channel_scale(const real[:, :, :, ::1] bottom, real[:, :, :, ::1] rows,
                         real[:, :, :, ::1] scale, int size, double alpha_over_area):
    """``scale = 1 + alpha/size**2 * (size x size zero-padded box sum of x**2)``; ``rows`` is scratch
    of the same shape."""
    cdef Py_ssize_t num = bottom.shape[0], channels = bottom.shape[1]
    cdef Py_ssize_t plane
    cdef Py_ssize_t n, c
    cdef real a = <real>alpha_over_area
    for plane in prange(num * channels, nogil=True, schedule='static'):
        n = plane // channels
        c = plane % channels
        _box_sum(bottom, rows, scale, n, c, size, 1)
        _affine(scale, n, c, a)


def apply_scale(const real[::1] bottom, const real[::1] scale, real[::1] top, real[::1] factor,
                double beta):
    """``factor = scale**-beta`` and ``top = bottom * factor`` over flat arrays. Caffe's backward
    raises every scale to the power again; cct's reuses ``factor`` (the same values)."""
    cdef Py_ssize_t i, count = bottom.shape[0]
    cdef real power = <real>-beta
    for i in prange(count, nogil=True, schedule='static'):
        factor[i] = _pow(scale[i], power)
        top[i] = bottom[i] * factor[i]


def cross_channel_backward(const real[:, :, ::1] bottom, const real[:, :, ::1] top,
                           const real[:, :, ::1] scale, const real[:, :, ::1] factor,
                           const real[:, :, ::1] top_diff, real[:, :, ::1] bottom_diff, int size,
                           double cache_ratio):
    """``dx = dy * factor - cache_ratio * x * channel_window_sum(dy * y / scale)``, with ``factor``
    the forward's ``scale**-beta``.

    The window sum is first run into ``bottom_diff`` (the same head/tail scheme as the forward),
    then combined in place. Arrays are viewed as (N, C, H*W).
    """
    cdef Py_ssize_t num = bottom.shape[0], channels = bottom.shape[1], pixels = bottom.shape[2]
    cdef Py_ssize_t blocks = (pixels + PIXEL_BLOCK - 1) // PIXEL_BLOCK
    cdef Py_ssize_t task, n, c, p, start, stop, head, tail
    cdef int pre_pad = (size - 1) // 2
    cdef real ratio = <real>cache_ratio
    for task in prange(num * blocks, nogil=True, schedule='static'):
        n = task // blocks
        start = (task % blocks) * PIXEL_BLOCK
        stop = min(start + PIXEL_BLOCK, pixels)
        for p in range(start, stop):
            bottom_diff[n, 0, p] = 0
        for c in range(min(pre_pad + 1, channels)):
            for p in range(start, stop):
                bottom_diff[n, 0, p] += top_diff[n, c, p] * top[n, c, p] / scale[n, c, p]
        for c in range(1, channels):
            head = c + pre_pad
            tail = c - pre_pad - 1
            for p in range(start, stop):
                bottom_diff[n, c, p] = bottom_diff[n, c - 1, p]
                if head < channels:
                    bottom_diff[n, c, p] += top_diff[n, head, p] * top[n, head, p] / \
                        scale[n, head, p]
                if tail >= 0:
                    bottom_diff[n, c, p] -= top_diff[n, tail, p] * top[n, tail, p] / \
                        scale[n, tail, p]
        for c in range(channels):
            for p in range(start, stop):
                bottom_diff[n, c, p] = top_diff[n, c, p] * factor[n, c, p] - \
                    ratio * bottom[n, c, p] * bottom_diff[n, c, p]


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
