"""Depthwise convolutions (each group one image-side channel: MobileNet's 3x3s) as direct loops over
the planes, instead of the lowering's one tiny GEMM per channel.

In the plan's terms (cct/devices/plans.py) a depthwise product has ``group == image_channels``:
image channel c feeds the ``k = col_channels / group`` column-side channels c*k .. c*k+k-1 (the
channel multiplier), each through its own kh x kw filter. Lowering such a layer writes kh*kw
values per input value for GEMMs of K = kh*kw (9) that BLAS cannot run fast, and the weight
gradient's GEMMs are thinner still; a direct loop reads each plane once.

Each thread first copies the plane it works on into a zero-padded plane of its own (the borders
are zeroed once per call), so no loop tests bounds or splits a row at the image's edges: MobileNet's
7x7 and 14x14 planes have rows too short for that. With stride 1 a kernel tap is then one pass
over the whole plane, flat (``acc[q] += w * padded[q + offset]``, output rows at the padded
pitch, the columns past the output's width dropped when copied out), a long vectorised loop; with
other strides one pass per output row and tap; 3x3 kernels take all nine taps in one pass. Sums
run over the taps in Caffe's order (kernel row, then column) from 0 and the bias is added last,
as Caffe's GEMM over im2col's zero-padded columns, then its bias GEMM, do. The data gradient is
the same correlation, of the top spread out by the strides with the flipped filter, and the
weight gradient (depthwise_weights.pxi) running sums per tap: both sum Caffe's col2im's and
weight GEMM's products in another order, plus products with zeros (float rounding only).
Planes are spread over the cores (OpenMP), each written by one thread, so no result depends on
the thread count.
"""
from cython.parallel cimport prange
from libc.string cimport memset
from openmp cimport omp_get_max_threads, omp_get_thread_num

from cct.kernels.blas cimport real
from cct.kernels.bounds cimport check_conv_axis

DEF LANES = 16    # running sums per weight-gradient tap: one or two vectors, added in a fixed order


cdef struct Plane:
    Py_ssize_t kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w
    Py_ssize_t out_h, out_w, height, width    # the output's and the input's planes
    Py_ssize_t padded_h, padded_w             # the input's plane with its padding


cdef Plane _plane(tuple geometry, Py_ssize_t height, Py_ssize_t width) except *:
    cdef Plane g
    (g.kernel_h, g.kernel_w, g.pad_h, g.pad_w, g.stride_h, g.stride_w, g.dilation_h,
     g.dilation_w, g.out_h, g.out_w) = geometry
    g.height, g.width = height, width
    check_conv_axis('depthwise', 'height', height, g.out_h, g.kernel_h, g.stride_h, g.pad_h,
                    g.dilation_h)
    check_conv_axis('depthwise', 'width', width, g.out_w, g.kernel_w, g.stride_w, g.pad_w,
                    g.dilation_w)
    g.padded_h, g.padded_w = height + 2 * g.pad_h, width + 2 * g.pad_w
    return g


cdef Plane _transposed(const Plane *g) noexcept:
    """The data gradient as a stride-1 correlation with the flipped kernel (Caffe's col2im sums
    the same products): of the top's plane spread out by the strides (``_spread``: top pixel
    (oh, ow) at (oh*stride_h, ow*stride_w), zeros between and after, height + 2*pad -
    (kh-1)*dilation_h rows), padded by (k-1)*dilation - pad (negative where the padding reaches
    further than the kernel: ``_transposable``), giving the image's plane."""
    cdef Plane t = g[0]
    t.pad_h = (g.kernel_h - 1) * g.dilation_h - g.pad_h
    t.pad_w = (g.kernel_w - 1) * g.dilation_w - g.pad_w
    t.stride_h = t.stride_w = 1
    t.out_h, t.out_w = g.height, g.width
    t.height = g.height + 2 * g.pad_h - (g.kernel_h - 1) * g.dilation_h
    t.width = g.width + 2 * g.pad_w - (g.kernel_w - 1) * g.dilation_w
    t.padded_h, t.padded_w = t.height + 2 * t.pad_h, t.width + 2 * t.pad_w
    return t


cdef bint _transposable(const Plane *g) noexcept:
    return g.pad_h <= (g.kernel_h - 1) * g.dilation_h and \
        g.pad_w <= (g.kernel_w - 1) * g.dilation_w


cdef void _spread(const real *dy, const Plane *g, const Plane *t, real *padded) noexcept nogil:
    """Write the top's plane dy into t's padded plane, spread out by g's strides; the positions
    between stay as they are (0). With stride 1 this is ``_pad_plane``'s copy."""
    cdef Py_ssize_t oh, ow
    cdef real *dst
    cdef const real *src
    for oh in range(g.out_h):
        dst = padded + (t.pad_h + oh * g.stride_h) * t.padded_w + t.pad_w
        src = dy + oh * g.out_w
        if g.stride_w == 1:
            for ow in range(g.out_w):
                dst[ow] = src[ow]
        else:
            for ow in range(g.out_w):
                dst[ow * g.stride_w] = src[ow]


cdef Py_ssize_t _correlate_scratch(const Plane *g) noexcept:
    """Values per thread that ``_correlate`` needs: the padded plane, and for stride 1 the
    output at the padded pitch."""
    cdef Py_ssize_t size = g.padded_h * g.padded_w
    if g.stride_h == 1 and g.stride_w == 1:
        size += g.out_h * g.padded_w
    return size


cdef void _pad_plane(const real *x, const Plane *g, real *padded) noexcept nogil:
    """Copy the height x width plane x inside ``padded``, whose borders stay as they are (0)."""
    cdef Py_ssize_t r, q
    cdef real *dst
    for r in range(g.height):
        dst = padded + (r + g.pad_h) * g.padded_w + g.pad_w
        for q in range(g.width):
            dst[q] = x[r * g.width + q]


cdef inline void _taps3x3(real *acc, const real *r0, const real *r1, const real *r2,
                          const real *w, Py_ssize_t count, Py_ssize_t dilation,
                          Py_ssize_t stride) noexcept nogil:
    """acc[q] += the nine taps of a 3x3 kernel (rows r0..r2) for q < count, in Caffe's order."""
    cdef Py_ssize_t q, d = dilation, d2 = 2 * dilation
    cdef real w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6]
    cdef real w7 = w[7], w8 = w[8]
    if stride == 1:
        for q in range(count):
            acc[q] = (acc[q] + w0 * r0[q] + w1 * r0[q + d] + w2 * r0[q + d2] + w3 * r1[q] +
                      w4 * r1[q + d] + w5 * r1[q + d2] + w6 * r2[q] + w7 * r2[q + d] +
                      w8 * r2[q + d2])
    elif stride == 2:
        for q in range(count):
            acc[q] = (acc[q] + w0 * r0[2 * q] + w1 * r0[2 * q + d] + w2 * r0[2 * q + d2] +
                      w3 * r1[2 * q] + w4 * r1[2 * q + d] + w5 * r1[2 * q + d2] +
                      w6 * r2[2 * q] + w7 * r2[2 * q + d] + w8 * r2[2 * q + d2])
    else:
        for q in range(count):
            acc[q] = (acc[q] + w0 * r0[stride * q] + w1 * r0[stride * q + d] +
                      w2 * r0[stride * q + d2] + w3 * r1[stride * q] +
                      w4 * r1[stride * q + d] + w5 * r1[stride * q + d2] +
                      w6 * r2[stride * q] + w7 * r2[stride * q + d] + w8 * r2[stride * q + d2])


cdef void _taps(real *acc, const real *src, Py_ssize_t pitch, const real *w, Py_ssize_t count,
                Py_ssize_t stride, const Plane *g) noexcept nogil:
    """acc[q] += sum over the taps (i, j) of w[i, j] * src[q*stride + i*dilation_h*pitch +
    j*dilation_w] for q < count, tap by tap in Caffe's order."""
    cdef Py_ssize_t q, i, j
    cdef const real *s
    cdef real wv
    if g.kernel_h == 3 and g.kernel_w == 3:
        _taps3x3(acc, src, src + g.dilation_h * pitch, src + 2 * g.dilation_h * pitch, w, count,
                 g.dilation_w, stride)
        return
    for i in range(g.kernel_h):
        for j in range(g.kernel_w):
            s = src + i * g.dilation_h * pitch + j * g.dilation_w
            wv = w[i * g.kernel_w + j]
            if stride == 1:
                for q in range(count):
                    acc[q] = acc[q] + wv * s[q]
            else:
                for q in range(count):
                    acc[q] = acc[q] + wv * s[q * stride]


cdef void _correlate(const real *x, const real *w, real *y, bint accumulate, const Plane *g,
                     real *scratch) noexcept nogil:
    """y (out_h x out_w) = (or +=, with ``accumulate``) the correlation of the plane x with the
    kh x kw filter w under g's pad (>= 0), stride and dilation. ``scratch``: the padded plane
    (borders 0) and room for ``_correlate_scratch`` values."""
    _pad_plane(x, g, scratch)
    _correlate_padded(scratch, w, y, accumulate, g)


cdef void _correlate_padded(real *scratch, const real *w, real *y, bint accumulate,
                            const Plane *g) noexcept nogil:
    """``_correlate`` of the plane already in ``scratch``, padded."""
    cdef Py_ssize_t oh, ow, count
    cdef real *acc
    cdef real *row
    if g.stride_h == 1 and g.stride_w == 1:
        # One flat pass per tap over the output at the padded pitch: the last row stops at
        # out_w, so no tap reads past the padded plane.
        acc = scratch + g.padded_h * g.padded_w
        count = (g.out_h - 1) * g.padded_w + g.out_w
        for ow in range(count):
            acc[ow] = 0
        _taps(acc, scratch, g.padded_w, w, count, 1, g)
        for oh in range(g.out_h):
            row = y + oh * g.out_w
            if accumulate:
                for ow in range(g.out_w):
                    row[ow] = row[ow] + acc[oh * g.padded_w + ow]
            else:
                for ow in range(g.out_w):
                    row[ow] = acc[oh * g.padded_w + ow]
        return
    for oh in range(g.out_h):
        row = y + oh * g.out_w
        if not accumulate:
            for ow in range(g.out_w):
                row[ow] = 0
        _taps(row, scratch + oh * g.stride_h * g.padded_w, g.padded_w, w, g.out_w, g.stride_w, g)


cdef void _scatter(const real *dy, const real *w, real *padded, const Plane *g) noexcept nogil:
    """padded (padded_h x padded_w) += the transpose of ``_correlate`` applied to dy (out_h x
    out_w): each output pixel's value times each tap added where that tap read."""
    cdef Py_ssize_t oh, ow, i, j, sw = g.stride_w
    cdef const real *src
    cdef real *dst
    cdef real wv
    for oh in range(g.out_h):
        src = dy + oh * g.out_w
        for i in range(g.kernel_h):
            for j in range(g.kernel_w):
                dst = padded + (oh * g.stride_h + i * g.dilation_h) * g.padded_w + \
                    j * g.dilation_w
                wv = w[i * g.kernel_w + j]
                if sw == 1:
                    for ow in range(g.out_w):
                        dst[ow] = dst[ow] + wv * src[ow]
                else:
                    for ow in range(g.out_w):
                        dst[ow * sw] = dst[ow * sw] + wv * src[ow]


# The weight gradient (its own file: this one would pass 400 lines).
include "depthwise_weights.pxi"


# ------------------------------------------------------------------------ layer-level operations
def depthwise_scratch(tuple geometry, Py_ssize_t height, Py_ssize_t width):
    """Values per thread the three calls below need as ``scratch`` for ``geometry`` (as given to
    them) over height x width images."""
    cdef Plane g = _plane(geometry, height, width)
    cdef Plane t = _transposed(&g)
    cdef Stack st = _stack(&g)
    cdef Py_ssize_t padded = g.padded_h * g.padded_w
    return max(_correlate_scratch(&g), _correlate_scratch(&t) if _transposable(&g) else padded,
               st.images * st.block * g.padded_w * 2 + (g.kernel_h * g.kernel_w + 1) * LANES +
               g.kernel_h * g.kernel_w * g.out_w)


cdef int _check(str name, Py_ssize_t num, Py_ssize_t channels, Py_ssize_t weight_rows,
                Py_ssize_t weight_cols, Py_ssize_t col_num, Py_ssize_t col_channels,
                Py_ssize_t col_pixels, const Plane *g, real[:, ::1] scratch) except -1:
    """The image side (num, channels), the weights (channels*k, kh*kw), the column side
    (num, channels*k, out_h*out_w) and the scratch agree."""
    cdef Py_ssize_t need = depthwise_scratch(
        (g.kernel_h, g.kernel_w, g.pad_h, g.pad_w, g.stride_h, g.stride_w, g.dilation_h,
         g.dilation_w, g.out_h, g.out_w), g.height, g.width)
    if channels <= 0 or weight_rows % channels:
        raise ValueError('%s: %d weight rows for %d channels (a multiple is needed)'
                         % (name, weight_rows, channels))
    if weight_cols != g.kernel_h * g.kernel_w:
        raise ValueError('%s: weights have %d columns, expected kh*kw = %d'
                         % (name, weight_cols, g.kernel_h * g.kernel_w))
    if col_num != num or col_channels != weight_rows or col_pixels != g.out_h * g.out_w:
        raise ValueError('%s: the column side is (%d, %d, %d), expected (%d, %d, %d)'
                         % (name, col_num, col_channels, col_pixels, num, weight_rows,
                            g.out_h * g.out_w))
    if scratch.shape[0] < omp_get_max_threads() or scratch.shape[1] < need:
        raise ValueError('%s: the scratch needs %d rows of %d values'
                         % (name, omp_get_max_threads(), need))
    return 0


cdef void _zero_rows(real[:, ::1] scratch, Py_ssize_t count) noexcept:
    """The first ``count`` values of every thread's scratch row set to 0 (the padded planes'
    borders, which the copies never write)."""
    cdef Py_ssize_t t
    for t in range(scratch.shape[0]):
        memset(&scratch[t, 0], 0, count * sizeof(real))


def depthwise_forward(const real[:, :, :, ::1] images, const real[:, ::1] weights,
                      const real[::1] bias, real[:, :, ::1] out, tuple geometry,
                      real[:, ::1] scratch):
    """``out[n, c*k + m] = images[n, c] correlated with weights[c*k + m] (+ bias)``: Caffe's
    forward_cpu_gemm for group == channels.

    Args:
        images: (N, C, H, W), the image side.
        weights: (C*k, kh*kw), k the channel multiplier.
        bias: (C*k,), or empty for none.
        out: (N, C*k, out_h*out_w), the column side.
        geometry: (kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w,
            out_h, out_w), as for ``lowered_forward``.
        scratch: one row per thread of ``depthwise_scratch`` values.
    """
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Plane g = _plane(geometry, images.shape[2], images.shape[3])
    cdef Py_ssize_t outputs = weights.shape[0], pixels = g.out_h * g.out_w, k, task, o, q
    cdef bint has_bias = bias.shape[0] > 0
    cdef real *y
    _check('depthwise_forward', num, channels, outputs, weights.shape[1], out.shape[0],
           out.shape[1], out.shape[2], &g, scratch)
    if has_bias and bias.shape[0] != outputs:
        raise ValueError('depthwise_forward: bias has %d values for %d outputs'
                         % (bias.shape[0], outputs))
    k = outputs // channels
    _zero_rows(scratch, g.padded_h * g.padded_w)
    for task in prange(num * outputs, nogil=True, schedule='static'):
        o = task % outputs
        y = &out[task // outputs, o, 0]
        _correlate(&images[task // outputs, o // k, 0, 0], &weights[o, 0], y, False, &g,
                   &scratch[omp_get_thread_num(), 0])
        if has_bias:
            for q in range(pixels):
                y[q] = y[q] + bias[o]


def depthwise_backward_data(const real[:, :, ::1] rows, const real[:, ::1] weights,
                            const real[::1] bias, real[:, :, :, ::1] images, tuple geometry,
                            real[::1] flipped, real[:, ::1] scratch):
    """``images[n, c] = the sum over m of rows[n, c*k + m] through the transpose of
    weights[c*k + m]`` (+ bias[c]): Caffe's backward_cpu_gemm (col2im of W^T rows) for
    group == channels; ``images`` is overwritten. With padding within the kernel's reach, a
    correlation of each top plane, spread out by the strides, with its flipped filter (kept in
    ``flipped``, as many values as ``weights``): flat vectorised passes even where three
    quarters of the spread plane are zeros (stride 2), faster than scattering one top pixel at
    a time into every other column; otherwise that scatter, into a padded plane. Arguments as for
    ``depthwise_forward``; ``bias`` is (C,) or empty.
    """
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Plane g = _plane(geometry, images.shape[2], images.shape[3])
    cdef Plane t = _transposed(&g)
    cdef Py_ssize_t outputs = weights.shape[0], taps = weights.shape[1]
    cdef Py_ssize_t plane = g.height * g.width, k, task, c, m, q, o, r
    cdef bint has_bias = bias.shape[0] > 0
    cdef bint correlate = _transposable(&g)
    cdef real *dx
    cdef real *padded
    _check('depthwise_backward_data', num, channels, outputs, taps, rows.shape[0], rows.shape[1],
           rows.shape[2], &g, scratch)
    if has_bias and bias.shape[0] != channels:
        raise ValueError('depthwise_backward_data: bias has %d values for %d channels'
                         % (bias.shape[0], channels))
    if flipped.shape[0] < outputs * taps:
        raise ValueError('depthwise_backward_data: the flipped weights need %d values'
                         % (outputs * taps))
    k = outputs // channels
    for o in range(outputs):
        for q in range(taps):
            flipped[o * taps + q] = weights[o, taps - 1 - q]
    if correlate:
        _zero_rows(scratch, t.padded_h * t.padded_w)
    for task in prange(num * channels, nogil=True, schedule='static'):
        c = task % channels
        dx = &images[task // channels, c, 0, 0]
        padded = &scratch[omp_get_thread_num(), 0]
        if correlate:
            for m in range(k):
                _spread(&rows[task // channels, c * k + m, 0], &g, &t, padded)
                _correlate_padded(padded, &flipped[(c * k + m) * taps], dx, m > 0, &t)
        else:
            memset(padded, 0, g.padded_h * g.padded_w * sizeof(real))
            for m in range(k):
                _scatter(&rows[task // channels, c * k + m, 0], &weights[c * k + m, 0], padded,
                         &g)
            for r in range(g.height):
                for q in range(g.width):
                    dx[r * g.width + q] = padded[(r + g.pad_h) * g.padded_w + g.pad_w + q]
        if has_bias:
            for q in range(plane):
                dx[q] = dx[q] + bias[c]

