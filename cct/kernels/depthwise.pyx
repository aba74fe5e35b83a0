"""Depthwise convolutions (every group one image-side channel: MobileNet's 3x3s) as direct loops over the
planes, instead of the lowering's one tiny GEMM per channel.

In the plan's terms (cct/devices/plans.py) a depthwise product has ``group == image_channels``:
image channel c feeds the ``k = col_channels / group`` column-side channels c*k .. c*k+k-1 (the
channel multiplier), each through its own kh x kw filter. Lowering such a layer writes kh*kw
values per input value for GEMMs of K = kh*kw (9) that BLAS cannot run fast, and the weight
gradient's GEMMs are thinner still; a direct loop reads each plane once.

Every loop below runs over one output row at a time, one kernel tap per pass (``row[ow] +=
w * src[ow*stride]`` over the columns whose input lies inside the image, computed once per tap by
``cct_valid_columns``), so the compiler vectorises the pass and no pixel tests bounds; 3x3 stride
1 and 2 rows inside the image take all nine taps in one pass (MobileNet's layers). Sums run over
the taps in Caffe's order (kernel row, then column) and the bias is added last, as Caffe's GEMM
then bias GEMM do; the data gradient and the weight gradient sum the same products as Caffe's
col2im and weight GEMMs, in another order (float rounding only). Planes are spread over the cores
(OpenMP), each written by one thread, so no result depends on the thread count.
"""
from cython.parallel cimport prange
from libc.string cimport memset
from openmp cimport omp_get_max_threads, omp_get_thread_num

from cct.kernels.blas cimport real
from cct.kernels.bounds cimport check_conv_axis


cdef extern from "conv_panels.h" nogil:
    void cct_valid_columns(Py_ssize_t offset, Py_ssize_t width, Py_ssize_t stride,
                           Py_ssize_t out_w, Py_ssize_t *begin, Py_ssize_t *end)


cdef struct Plane:
    Py_ssize_t kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w
    Py_ssize_t out_h, out_w, height, width    # the output's and the input's planes


cdef Plane _plane(tuple geometry, Py_ssize_t height, Py_ssize_t width) except *:
    cdef Plane g
    (g.kernel_h, g.kernel_w, g.pad_h, g.pad_w, g.stride_h, g.stride_w, g.dilation_h,
     g.dilation_w, g.out_h, g.out_w) = geometry
    g.height, g.width = height, width
    check_conv_axis('depthwise', 'height', height, g.out_h, g.kernel_h, g.stride_h, g.pad_h,
                    g.dilation_h)
    check_conv_axis('depthwise', 'width', width, g.out_w, g.kernel_w, g.stride_w, g.pad_w,
                    g.dilation_w)
    return g


cdef Plane _transposed(const Plane *g) noexcept:
    """For stride 1: the geometry of the data gradient as a convolution of the top's plane with
    the flipped kernel (output = the image's plane). Its pad, (k-1)*dilation - pad, is negative
    where the padding is wider than the kernel's reach: the valid rows and columns handle it."""
    cdef Plane t = g[0]
    t.pad_h = (g.kernel_h - 1) * g.dilation_h - g.pad_h
    t.pad_w = (g.kernel_w - 1) * g.dilation_w - g.pad_w
    t.out_h, t.out_w, t.height, t.width = g.height, g.width, g.out_h, g.out_w
    return t


cdef inline void _tap_pass(real *row, const real *src, real w, Py_ssize_t begin, Py_ssize_t end,
                           Py_ssize_t stride) noexcept nogil:
    """row[ow] += w * src[ow*stride] for ow in [begin, end)."""
    cdef Py_ssize_t ow
    if stride == 1:
        for ow in range(begin, end):
            row[ow] = row[ow] + w * src[ow]
    elif stride == 2:
        for ow in range(begin, end):
            row[ow] = row[ow] + w * src[2 * ow]
    else:
        for ow in range(begin, end):
            row[ow] = row[ow] + w * src[ow * stride]


cdef inline void _row3x3(real *row, const real *r0, const real *r1, const real *r2,
                         const real *w, Py_ssize_t begin, Py_ssize_t end,
                         Py_ssize_t dilation, Py_ssize_t stride) noexcept nogil:
    """row[ow] += the nine taps of a 3x3 kernel for ow in [begin, end), all inside the image (the
    rows r0..r2 already offset by the first tap's column), added in the order of ``_tap_pass``."""
    cdef Py_ssize_t ow, d = dilation, d2 = 2 * dilation
    cdef real w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6]
    cdef real w7 = w[7], w8 = w[8]
    if stride == 1:
        for ow in range(begin, end):
            row[ow] = (row[ow] + w0 * r0[ow] + w1 * r0[ow + d] + w2 * r0[ow + d2] + w3 * r1[ow] +
                       w4 * r1[ow + d] + w5 * r1[ow + d2] + w6 * r2[ow] + w7 * r2[ow + d] +
                       w8 * r2[ow + d2])
    else:
        for ow in range(begin, end):
            row[ow] = (row[ow] + w0 * r0[2 * ow] + w1 * r0[2 * ow + d] + w2 * r0[2 * ow + d2] +
                       w3 * r1[2 * ow] + w4 * r1[2 * ow + d] + w5 * r1[2 * ow + d2] +
                       w6 * r2[2 * ow] + w7 * r2[2 * ow + d] + w8 * r2[2 * ow + d2])


cdef void _correlate(const real *x, const real *w, real *y, bint accumulate,
                     const Plane *g) noexcept nogil:
    """y (out_h x out_w) = (or +=, with ``accumulate``) the correlation of the plane x (height x
    width) with the kh x kw filter w under g's pad, stride and dilation."""
    cdef Py_ssize_t oh, ow, i, j, ih, begin, end, lo, hi, offset
    cdef Py_ssize_t kw = g.kernel_w, sw = g.stride_w
    cdef bint fused = g.kernel_h == 3 and g.kernel_w == 3 and sw <= 2
    cdef real *row
    # The columns where all three taps of a 3x3 row fall inside the image.
    lo, hi = 0, 0
    if fused:
        cct_valid_columns(-g.pad_w, g.width, sw, g.out_w, &lo, &end)
        cct_valid_columns(2 * g.dilation_w - g.pad_w, g.width, sw, g.out_w, &begin, &hi)
        lo = max(lo, begin)
        hi = min(hi, end)
    for oh in range(g.out_h):
        row = y + oh * g.out_w
        if not accumulate:
            for ow in range(g.out_w):
                row[ow] = 0
        ih = oh * g.stride_h - g.pad_h
        if fused and hi > lo and ih >= 0 and ih + 2 * g.dilation_h < g.height:
            offset = -g.pad_w
            _row3x3(row, x + ih * g.width + offset, x + (ih + g.dilation_h) * g.width + offset,
                    x + (ih + 2 * g.dilation_h) * g.width + offset, w, lo, hi, g.dilation_w, sw)
            # The columns at either end, where some taps read padding, one tap at a time.
            for i in range(3):
                for j in range(3):
                    offset = j * g.dilation_w - g.pad_w
                    cct_valid_columns(offset, g.width, sw, g.out_w, &begin, &end)
                    _tap_pass(row, x + (ih + i * g.dilation_h) * g.width + offset, w[i * 3 + j],
                              begin, min(end, lo), sw)
                    _tap_pass(row, x + (ih + i * g.dilation_h) * g.width + offset, w[i * 3 + j],
                              max(begin, hi), end, sw)
            continue
        for i in range(g.kernel_h):
            if ih + i * g.dilation_h < 0 or ih + i * g.dilation_h >= g.height:
                continue
            for j in range(kw):
                offset = j * g.dilation_w - g.pad_w
                cct_valid_columns(offset, g.width, sw, g.out_w, &begin, &end)
                _tap_pass(row, x + (ih + i * g.dilation_h) * g.width + offset, w[i * kw + j],
                          begin, end, sw)


cdef void _scatter(const real *dy, const real *w, real *dx, const Plane *g) noexcept nogil:
    """dx (height x width) += the transpose of ``_correlate`` applied to dy (out_h x out_w): each
    output pixel's value times each tap added to the input pixel that tap read (col2im's order:
    tap by tap, then the output rows)."""
    cdef Py_ssize_t oh, ow, i, j, ih, begin, end, offset, sw = g.stride_w
    cdef const real *src
    cdef real *dst
    cdef real wv
    for i in range(g.kernel_h):
        for j in range(g.kernel_w):
            offset = j * g.dilation_w - g.pad_w
            cct_valid_columns(offset, g.width, sw, g.out_w, &begin, &end)
            wv = w[i * g.kernel_w + j]
            for oh in range(g.out_h):
                ih = oh * g.stride_h - g.pad_h + i * g.dilation_h
                if ih < 0 or ih >= g.height:
                    continue
                src = dy + oh * g.out_w
                dst = dx + ih * g.width + offset
                if sw == 1:
                    for ow in range(begin, end):
                        dst[ow] = dst[ow] + wv * src[ow]
                else:
                    for ow in range(begin, end):
                        dst[ow * sw] = dst[ow * sw] + wv * src[ow]


cdef void _weight_sums(const real *x, const real *dy, real *sums, real *bias_sums,
                       bint want_weights, const Plane *g) noexcept nogil:
    """For one (image, output channel): sums[tap*out_w + ow] += the products of dy's column ow
    with what the tap read there, over the output rows; bias_sums[ow] += dy's column ow (unless
    NULL). Running sums per column keep the passes vectorised (no reduction order to honour)."""
    cdef Py_ssize_t oh, ow, i, j, ih, begin, end, offset, taps, sw = g.stride_w
    cdef const real *row
    cdef const real *src
    cdef real *acc
    for oh in range(g.out_h):
        row = dy + oh * g.out_w
        if bias_sums != NULL:
            for ow in range(g.out_w):
                bias_sums[ow] = bias_sums[ow] + row[ow]
        if not want_weights:
            continue
        for i in range(g.kernel_h):
            ih = oh * g.stride_h - g.pad_h + i * g.dilation_h
            if ih < 0 or ih >= g.height:
                continue
            for j in range(g.kernel_w):
                offset = j * g.dilation_w - g.pad_w
                cct_valid_columns(offset, g.width, sw, g.out_w, &begin, &end)
                acc = sums + (i * g.kernel_w + j) * g.out_w
                src = x + ih * g.width + offset
                if sw == 1:
                    for ow in range(begin, end):
                        acc[ow] = acc[ow] + row[ow] * src[ow]
                elif sw == 2:
                    for ow in range(begin, end):
                        acc[ow] = acc[ow] + row[ow] * src[2 * ow]
                else:
                    for ow in range(begin, end):
                        acc[ow] = acc[ow] + row[ow] * src[ow * sw]


cdef inline real _row_sum(const real *values, Py_ssize_t count) noexcept nogil:
    cdef real total = 0
    cdef Py_ssize_t q
    for q in range(count):
        total = total + values[q]
    return total


# ------------------------------------------------------------------------ layer-level operations
cdef int _check(str name, Py_ssize_t num, Py_ssize_t channels, Py_ssize_t weight_rows,
                Py_ssize_t weight_cols, Py_ssize_t col_num, Py_ssize_t col_channels,
                Py_ssize_t col_pixels, const Plane *g) except -1:
    """The image side (num, channels), the weights (channels*k, kh*kw) and the column side
    (num, channels*k, out_h*out_w) agree."""
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
    return 0


def depthwise_forward(const real[:, :, :, ::1] images, const real[:, ::1] weights,
                      const real[::1] bias, real[:, :, ::1] out, tuple geometry):
    """``out[n, c*k + m] = images[n, c] correlated with weights[c*k + m] (+ bias)``: Caffe's
    forward_cpu_gemm for group == channels.

    Args:
        images: (N, C, H, W), the image side.
        weights: (C*k, kh*kw), k the channel multiplier.
        bias: (C*k,), or empty for none.
        out: (N, C*k, out_h*out_w), the column side.
        geometry: (kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w,
            out_h, out_w), as for ``lowered_forward``.
    """
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Plane g = _plane(geometry, images.shape[2], images.shape[3])
    cdef Py_ssize_t outputs = weights.shape[0], pixels = g.out_h * g.out_w, k, task, o, q
    cdef bint has_bias = bias.shape[0] > 0
    cdef real *y
    _check('depthwise_forward', num, channels, outputs, weights.shape[1], out.shape[0],
           out.shape[1], out.shape[2], &g)
    if has_bias and bias.shape[0] != outputs:
        raise ValueError('depthwise_forward: bias has %d values for %d outputs'
                         % (bias.shape[0], outputs))
    k = outputs // channels
    for task in prange(num * outputs, nogil=True, schedule='static'):
        o = task % outputs
        y = &out[task // outputs, o, 0]
        _correlate(&images[task // outputs, o // k, 0, 0], &weights[o, 0], y, False, &g)
        if has_bias:
            for q in range(pixels):
                y[q] = y[q] + bias[o]


def depthwise_backward_data(const real[:, :, ::1] rows, const real[:, ::1] weights,
                            const real[::1] bias, real[:, :, :, ::1] images, tuple geometry,
                            real[::1] flipped):
    """``images[n, c] = the sum over m of rows[n, c*k + m] through the transpose of
    weights[c*k + m]`` (+ bias[c]): Caffe's backward_cpu_gemm (col2im of W^T rows) for
    group == channels; ``images`` is overwritten. With stride 1 this is a correlation of each
    top plane with its flipped filter (kept in ``flipped``, as many values as ``weights``);
    otherwise a scatter. Arguments as for ``depthwise_forward``; ``bias`` is (C,) or empty.
    """
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Plane g = _plane(geometry, images.shape[2], images.shape[3])
    cdef Plane t = _transposed(&g)
    cdef Py_ssize_t outputs = weights.shape[0], taps = weights.shape[1]
    cdef Py_ssize_t plane = g.height * g.width, k, task, c, m, q, o
    cdef bint has_bias = bias.shape[0] > 0
    cdef bint correlate = g.stride_h == 1 and g.stride_w == 1
    cdef real *dx
    _check('depthwise_backward_data', num, channels, outputs, taps, rows.shape[0], rows.shape[1],
           rows.shape[2], &g)
    if has_bias and bias.shape[0] != channels:
        raise ValueError('depthwise_backward_data: bias has %d values for %d channels'
                         % (bias.shape[0], channels))
    if correlate and flipped.shape[0] < outputs * taps:
        raise ValueError('depthwise_backward_data: the flipped weights need %d values'
                         % (outputs * taps))
    k = outputs // channels
    if correlate:
        for o in range(outputs):
            for q in range(taps):
                flipped[o * taps + q] = weights[o, taps - 1 - q]
    for task in prange(num * channels, nogil=True, schedule='static'):
        c = task % channels
        dx = &images[task // channels, c, 0, 0]
        if not correlate:
            memset(dx, 0, plane * sizeof(real))
        for m in range(k):
            if correlate:
                _correlate(&rows[task // channels, c * k + m, 0], &flipped[(c * k + m) * taps],
                           dx, m > 0, &t)
            else:
                _scatter(&rows[task // channels, c * k + m, 0], &weights[c * k + m, 0], dx, &g)
        if has_bias:
            for q in range(plane):
                dx[q] = dx[q] + bias[c]


def depthwise_weight_grad(const real[:, :, :, ::1] images, const real[:, :, ::1] rows,
                          real[:, ::1] weight_diff, real[::1] bias_diff, bint want_weights,
                          tuple geometry, real[:, ::1] sums):
    """``weight_diff[c*k + m] += sum_n rows[n, c*k + m] correlated with images[n, c]`` (Caffe's
    weight_cpu_gemm for group == channels) when ``want_weights``, and ``bias_diff += the sum of
    rows per channel`` unless it is empty. Each output channel is summed by one thread, per
    column in ``sums`` (one row per thread of at least (kh*kw + 1) * out_w values), then along
    the columns, so the result does not depend on the thread count."""
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Plane g = _plane(geometry, images.shape[2], images.shape[3])
    cdef Py_ssize_t outputs = weight_diff.shape[0], taps = weight_diff.shape[1], k, o, n, q
    cdef Py_ssize_t width = (taps + 1) * g.out_w
    cdef bint want_bias = bias_diff.shape[0] > 0
    cdef real *acc
    _check('depthwise_weight_grad', num, channels, outputs, taps, rows.shape[0], rows.shape[1],
           rows.shape[2], &g)
    if want_bias and bias_diff.shape[0] != outputs:
        raise ValueError('depthwise_weight_grad: bias_diff has %d values for %d outputs'
                         % (bias_diff.shape[0], outputs))
    if sums.shape[0] < omp_get_max_threads() or sums.shape[1] < width:
        raise ValueError('depthwise_weight_grad: the sums need %d rows of %d values'
                         % (omp_get_max_threads(), width))
    if not (want_weights or want_bias):
        return
    k = outputs // channels
    for o in prange(outputs, nogil=True, schedule='dynamic'):
        acc = &sums[omp_get_thread_num(), 0]
        memset(acc, 0, width * sizeof(real))
        for n in range(num):
            _weight_sums(&images[n, o // k, 0, 0], &rows[n, o, 0], acc,
                         acc + taps * g.out_w if want_bias else NULL, want_weights, &g)
        if want_weights:
            for q in range(taps):
                weight_diff[o, q] += _row_sum(acc + q * g.out_w, g.out_w)
        if want_bias:
            bias_diff[o] += _row_sum(acc + taps * g.out_w, g.out_w)
