"""Convolution lowered to GEMM over batch partitions, Caffe con Troll style (Caffe's util/im2col.cpp and
base_conv_layer.cpp's forward/backward/weight GEMMs).

A *partition* of c images is lowered into one column buffer: one row per (channel, kernel row,
kernel column), one column per (image, output pixel), ``col[(ch*kh + i)*kw + j, n*P + p]`` with P
the output pixels per image, so each group's convolution is one GEMM over the whole partition
instead of Caffe's one GEMM per image. Partitions are spread over the cores with OpenMP, each core
lowering its own partition into its own (cache-sized) buffer and running a single-threaded GEMM on
it, so the lowered columns are consumed while they are still in cache and threads meet once per
layer, not once per GEMM.

For each kernel column the output columns whose input column falls inside the image form one
interval, computed once; a lowered row is then zeros, a (strided) copy, zeros, with no bounds test
per pixel.
"""
from cython.parallel cimport prange
from libc.string cimport memset
from openmp cimport omp_get_max_threads, omp_get_thread_num

from cct.kernels.blas cimport gemm_rm, real
from cct.kernels.bounds cimport check_conv_axis


cdef struct Lowering:
    int kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w
    int out_h, out_w    # the column side's planes
    Py_ssize_t height, width    # the image side's planes


def max_threads():
    """The number of threads a partitioned kernel may use (OpenMP's team size)."""
    return omp_get_max_threads()


cdef Lowering _lowering(tuple geometry, Py_ssize_t height, Py_ssize_t width) except *:
    cdef Lowering g
    (g.kernel_h, g.kernel_w, g.pad_h, g.pad_w, g.stride_h, g.stride_w, g.dilation_h,
     g.dilation_w, g.out_h, g.out_w) = geometry
    g.height, g.width = height, width
    check_conv_axis('lowering', 'height', height, g.out_h, g.kernel_h, g.stride_h, g.pad_h,
                    g.dilation_h)
    check_conv_axis('lowering', 'width', width, g.out_w, g.kernel_w, g.stride_w, g.pad_w,
                    g.dilation_w)
    return g


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """ceil(a / b) for b > 0 and any sign of a."""
    if a <= 0:
        return -((-a) // b)
    return (a + b - 1) // b


cdef extern from "conv_panels.h" nogil:
    # The output columns ow < out_w with 0 <= ow*stride + offset < width, as [begin, end):
    # shared with the panel kernels.
    void cct_valid_columns(Py_ssize_t offset, Py_ssize_t width, Py_ssize_t stride,
                           Py_ssize_t out_w, Py_ssize_t *begin, Py_ssize_t *end)


cdef void _lower_plane(const real *plane, real *rows, Py_ssize_t ld,
                       const Lowering *g) noexcept nogil:
    """Write the kh*kw lowered rows of one (image, channel) plane; row r starts at ``rows + r*ld``
    and gets out_h*out_w values."""
    cdef Py_ssize_t i, j, oh, ow, ih, begin, end, offset
    cdef real *dst
    cdef const real *src
    if g.stride_h == 1 and g.stride_w == 1 and g.out_w == g.width:
        _lower_plane_same(plane, rows, ld, g)
        return
    for i in range(g.kernel_h):
        for j in range(g.kernel_w):
            dst = rows + (i * g.kernel_w + j) * ld
            offset = j * g.dilation_w - g.pad_w
            cct_valid_columns(offset, g.width, g.stride_w, g.out_w, &begin, &end)
            for oh in range(g.out_h):
                ih = oh * g.stride_h - g.pad_h + i * g.dilation_h
                if ih < 0 or ih >= g.height or begin == end:
                    for ow in range(g.out_w):
                        dst[ow] = 0
                else:
                    for ow in range(begin):
                        dst[ow] = 0
                    src = plane + ih * g.width + offset
                    if g.stride_w == 1:
                        for ow in range(begin, end):
                            dst[ow] = src[ow]
                    else:
                        for ow in range(begin, end):
                            dst[ow] = src[ow * g.stride_w]
                    for ow in range(end, g.out_w):
                        dst[ow] = 0
                dst += g.out_w


cdef void _lower_plane_same(const real *plane, real *rows, Py_ssize_t ld,
                            const Lowering *g) noexcept nogil:
    """``_lower_plane`` for stride 1 and output rows as wide as the image ("same" convolutions):
    a kernel tap's lowered row is then the plane shifted by one offset, so the rows inside the
    image are one contiguous copy, and only the columns that fall into the padding are set to 0
    afterwards (small planes have rows too short for a copy per row to pay)."""
    cdef Py_ssize_t i, j, oh, q, begin, end, offset, first, last, base, length, lo, hi
    cdef Py_ssize_t out_w = g.out_w, size = g.height * g.width
    cdef real *dst
    cdef real *run
    cdef const real *src
    for i in range(g.kernel_h):
        # The output rows whose input row lies inside the image, [first, last): with padding or
        # dilation wider than the image both ends can fall outside [0, out_h], so clamp both.
        first = min(g.out_h, max(0, g.pad_h - i * g.dilation_h))
        last = min(g.out_h, g.height + g.pad_h - i * g.dilation_h)
        if last < first:
            last = first
        for j in range(g.kernel_w):
            dst = rows + (i * g.kernel_w + j) * ld
            offset = j * g.dilation_w - g.pad_w
            cct_valid_columns(offset, g.width, 1, out_w, &begin, &end)
            for q in range(first * out_w):
                dst[q] = 0
            for q in range(last * out_w, g.out_h * out_w):
                dst[q] = 0
            if last == first:
                continue
            # dst[first*out_w + q] comes from plane[base + q]; keep the reads inside the plane
            # (the values read past a row's end land in padding columns, cleared below).
            base = (first - g.pad_h + i * g.dilation_h) * g.width + offset
            length = (last - first) * out_w
            lo = max(0, -base)
            hi = min(length, size - base)
            run = dst + first * out_w
            src = plane + base
            for q in range(lo, hi):
                run[q] = src[q]
            for q in range(lo):
                run[q] = 0
            for q in range(hi, length):
                run[q] = 0
            if begin > 0 or end < out_w:
                for oh in range(first, last):
                    for q in range(oh * out_w, oh * out_w + begin):
                        dst[q] = 0
                    for q in range(oh * out_w + end, (oh + 1) * out_w):
                        dst[q] = 0


cdef void _unlower_plane(const real *rows, Py_ssize_t ld, real *plane,
                         const Lowering *g) noexcept nogil:
    """Overwrite one plane with the sum of its kh*kw lowered rows scattered back (col2im)."""
    cdef Py_ssize_t i, j, oh, ow, ih, begin, end, offset
    cdef const real *src
    cdef real *dst
    memset(plane, 0, g.height * g.width * sizeof(real))
    for i in range(g.kernel_h):
        for j in range(g.kernel_w):
            src = rows + (i * g.kernel_w + j) * ld
            offset = j * g.dilation_w - g.pad_w
            cct_valid_columns(offset, g.width, g.stride_w, g.out_w, &begin, &end)
            for oh in range(g.out_h):
                ih = oh * g.stride_h - g.pad_h + i * g.dilation_h
                if ih >= 0 and ih < g.height:
                    dst = plane + ih * g.width + offset
                    if g.stride_w == 1:
                        for ow in range(begin, end):
                            dst[ow] += src[ow]
                    else:
                        for ow in range(begin, end):
                            dst[ow * g.stride_w] += src[ow]
                src += g.out_w


cdef void _lower_images(const real *images, Py_ssize_t count, Py_ssize_t channels,
                        Py_ssize_t first, Py_ssize_t last, real *col,
                        const Lowering *g) noexcept nogil:
    """Lower channels [first, last) of ``count`` consecutive images (of ``channels`` each) into a
    ((last-first)*kh*kw) x (count*P) column buffer."""
    cdef Py_ssize_t n, ch, pixels = g.out_h * g.out_w, ld = count * pixels
    cdef Py_ssize_t taps = g.kernel_h * g.kernel_w, plane = g.height * g.width
    for n in range(count):
        for ch in range(first, last):
            _lower_plane(images + (n * channels + ch) * plane,
                         col + (ch - first) * taps * ld + n * pixels, ld, g)


cdef inline bint _identity(const Lowering *g) noexcept nogil:
    """Whether lowering copies each plane unchanged (a 1x1 kernel, stride 1, no padding: the
    1x1 convolutions of ResNet's bottlenecks), so that one image's column buffer IS its channels
    and the GEMMs read (or, for the data gradient, write) the images in place."""
    return (g.kernel_h == 1 and g.kernel_w == 1 and g.stride_h == 1 and g.stride_w == 1 and
            g.pad_h == 0 and g.pad_w == 0)


cdef void _gather(const real *by_image, Py_ssize_t count, Py_ssize_t rows, Py_ssize_t pixels,
                  real *out) noexcept nogil:
    """(count, rows, P) -> (rows, count*P): the layout the GEMMs of a partition use."""
    cdef Py_ssize_t n, r, p, ld = count * pixels
    for r in range(rows):
        for n in range(count):
            for p in range(pixels):
                out[r * ld + n * pixels + p] = by_image[(n * rows + r) * pixels + p]


cdef void _add_row_sums(const real *src, Py_ssize_t rows, Py_ssize_t length, Py_ssize_t ld,
                        real *out) noexcept nogil:
    """out[r] += the sum of src[r*ld : r*ld + length] for each of ``rows`` rows, in 16 running
    lanes (vectorised; one serial chain of adds is latency bound) added in a fixed order."""
    cdef real lanes[16]
    cdef real total
    cdef Py_ssize_t r, j, lane, body = length - length % 16
    cdef const real *row
    for r in range(rows):
        row = src + r * ld
        for lane in range(16):
            lanes[lane] = 0
        for j in range(0, body, 16):
            for lane in range(16):
                lanes[lane] += row[j + lane]
        total = 0
        for lane in range(16):
            total = total + lanes[lane]
        for j in range(body, length):
            total = total + row[j]
        out[r] += total


# ------------------------------------------------------------------------ layer-level operations
def lowered_forward(const real[:, :, :, ::1] images, const real[:, ::1] weights,
                    const real[::1] bias, real[:, :, ::1] out, tuple geometry, int group,
                    int partition, real[:, ::1] col_scratch, real[:, ::1] row_scratch):
    """``out[n] = W @ im2col(images[n]) (+ bias)`` per group (Caffe's forward_cpu_gemm).

    Args:
        images: (N, C, H, W), the image side.
        weights: (M, C/group*kh*kw).
        bias: (M,), or empty for none.
        out: (N, M, out_h*out_w), the column side.
        geometry: (kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w,
            out_h, out_w).
        group: the number of groups.
        partition: images lowered together.
        col_scratch, row_scratch: one row per thread, of at least C/group*kh*kw * partition*P
            and M * partition*P values.
    """
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Lowering g = _lowering(geometry, images.shape[2], images.shape[3])
    cdef Py_ssize_t pixels = g.out_h * g.out_w, outputs = weights.shape[0]
    cdef Py_ssize_t k_group = weights.shape[1], m_group = outputs // group
    cdef Py_ssize_t parts, part, start, count, ld, gi, n, m, p
    cdef bint has_bias = bias.shape[0] > 0
    cdef real *col
    cdef const real *lowered
    cdef real *dst
    cdef bint identity = _identity(&g)
    _check_lowered(num, channels, outputs, k_group, group, partition, &g, out.shape[0],
                   out.shape[1], out.shape[2], col_scratch, row_scratch, True)
    if has_bias and bias.shape[0] != outputs:
        raise ValueError('lowered_forward: bias has %d values for %d outputs'
                         % (bias.shape[0], outputs))
    parts = _ceil_div(num, partition)
    for part in prange(parts, nogil=True, schedule='dynamic'):
        start = part * partition
        count = min(partition, num - start)
        ld = count * pixels
        col = &col_scratch[omp_get_thread_num(), 0]
        if count == 1:
            dst = &out[start, 0, 0]
        else:
            dst = &row_scratch[omp_get_thread_num(), 0]
        for gi in range(group):
            if identity and count == 1:
                lowered = &images[start, gi * (channels // group), 0, 0]
            else:
                # One group's channels at a time: a smaller column buffer, still in cache.
                _lower_images(&images[start, 0, 0, 0], count, channels, gi * (channels // group),
                              (gi + 1) * (channels // group), col, &g)
                lowered = col
            gemm_rm(False, False, m_group, ld, k_group, 1, &weights[gi * m_group, 0], k_group,
                    lowered, ld, 0, dst + gi * m_group * ld, ld)
        if count == 1:
            if has_bias:
                for m in range(outputs):
                    for p in range(pixels):
                        dst[m * pixels + p] = dst[m * pixels + p] + bias[m]
        else:
            for n in range(count):
                for m in range(outputs):
                    for p in range(pixels):
                        out[start + n, m, p] = dst[m * ld + n * pixels + p] + \
                            (bias[m] if has_bias else 0)


def lowered_backward_data(const real[:, :, ::1] rows, const real[:, ::1] weights,
                          const real[::1] bias, real[:, :, :, ::1] images, tuple geometry,
                          int group, int partition, real[:, ::1] col_scratch,
                          real[:, ::1] row_scratch):
    """``images[n] = col2im(W^T @ rows[n]) (+ bias per channel)`` (Caffe's backward_cpu_gemm).

    ``rows`` is (N, M, out_h*out_w), the column side; ``images`` (N, C, H, W) is overwritten;
    ``bias`` is (C,) or empty (Deconvolution's forward adds its bias here). The other arguments
    are as for ``lowered_forward``.
    """
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Lowering g = _lowering(geometry, images.shape[2], images.shape[3])
    cdef Py_ssize_t pixels = g.out_h * g.out_w, outputs = weights.shape[0]
    cdef Py_ssize_t k_group = weights.shape[1], m_group = outputs // group
    cdef Py_ssize_t taps = g.kernel_h * g.kernel_w, plane = g.height * g.width
    cdef Py_ssize_t parts, part, start, count, ld, gi, n, ch, q
    cdef bint has_bias = bias.shape[0] > 0
    cdef real *col
    cdef const real *source
    cdef real *dst
    cdef bint identity = _identity(&g)
    _check_lowered(num, channels, outputs, k_group, group, partition, &g, rows.shape[0],
                   rows.shape[1], rows.shape[2], col_scratch, row_scratch, True)
    if has_bias and bias.shape[0] != channels:
        raise ValueError('lowered_backward_data: bias has %d values for %d channels'
                         % (bias.shape[0], channels))
    parts = _ceil_div(num, partition)
    for part in prange(parts, nogil=True, schedule='dynamic'):
        start = part * partition
        count = min(partition, num - start)
        ld = count * pixels
        col = &col_scratch[omp_get_thread_num(), 0]
        if count == 1:
            source = &rows[start, 0, 0]
        else:
            _gather(&rows[start, 0, 0], count, outputs, pixels, &row_scratch[omp_get_thread_num(), 0])
            source = &row_scratch[omp_get_thread_num(), 0]
        for gi in range(group):
            if identity and count == 1:
                # col2im of a 1x1 kernel is a copy: the GEMM writes the image's channels.
                dst = &images[start, gi * (channels // group), 0, 0]
                gemm_rm(True, False, k_group, ld, m_group, 1, &weights[gi * m_group, 0], k_group,
                        source + gi * m_group * ld, ld, 0, dst, ld)
                if has_bias:
                    for ch in range(channels // group):
                        for q in range(plane):
                            dst[ch * plane + q] = dst[ch * plane + q] + \
                                bias[gi * (channels // group) + ch]
                continue
            gemm_rm(True, False, k_group, ld, m_group, 1, &weights[gi * m_group, 0], k_group,
                    source + gi * m_group * ld, ld, 0, col, ld)
            for n in range(count):
                for ch in range(gi * (channels // group), (gi + 1) * (channels // group)):
                    dst = &images[start + n, ch, 0, 0]
                    _unlower_plane(col + (ch - gi * (channels // group)) * taps * ld +
                                   n * pixels, ld, dst, &g)
                    if has_bias:
                        for q in range(plane):
                            dst[q] = dst[q] + bias[ch]


def lowered_weight_grad(const real[:, :, :, ::1] images, const real[:, :, ::1] rows,
                        real[:, ::1] weight_diff, real[::1] bias_diff, bint want_weights,
                        tuple geometry, int group, int partition, real[:, ::1] col_scratch,
                        real[:, ::1] row_scratch, real[:, ::1] partial_weights,
                        real[:, ::1] partial_bias):
    """``weight_diff += sum_n rows[n] @ im2col(images[n])^T`` per group (Caffe's weight_cpu_gemm)
    when ``want_weights``, and ``bias_diff += sum over n, p of rows[n, :, p]`` unless it is empty.

    Each thread sums its partitions (a fixed set: static schedule) into its own row of the
    ``partial_*`` scratch; the rows are then added in thread order, so the result depends only on
    the thread count. The other arguments are as for ``lowered_forward``.
    """
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Lowering g = _lowering(geometry, images.shape[2], images.shape[3])
    cdef Py_ssize_t pixels = g.out_h * g.out_w, outputs = weight_diff.shape[0]
    cdef Py_ssize_t k_group = weight_diff.shape[1], m_group = outputs // group
    cdef Py_ssize_t threads = partial_weights.shape[0], size = outputs * k_group
    cdef Py_ssize_t parts, part, start, count, ld, gi, m, j, t, q
    cdef bint want_bias = bias_diff.shape[0] > 0
    cdef real *col
    cdef const real *source
    cdef const real *lowered
    cdef bint identity = _identity(&g)
    _check_lowered(num, channels, outputs, k_group, group, partition, &g, rows.shape[0],
                   rows.shape[1], rows.shape[2], col_scratch, row_scratch, want_weights)
    _start_partials('lowered_weight_grad', want_weights, want_bias, size, outputs, bias_diff,
                    partial_weights, partial_bias)
    parts = _ceil_div(num, partition)
    for part in prange(parts, nogil=True, schedule='static'):
        start = part * partition
        count = min(partition, num - start)
        ld = count * pixels
        if count == 1:
            source = &rows[start, 0, 0]
        else:
            _gather(&rows[start, 0, 0], count, outputs, pixels, &row_scratch[omp_get_thread_num(), 0])
            source = &row_scratch[omp_get_thread_num(), 0]
        if want_weights:
            col = &col_scratch[omp_get_thread_num(), 0]
            for gi in range(group):
                if identity and count == 1:
                    lowered = &images[start, gi * (channels // group), 0, 0]
                else:
                    _lower_images(&images[start, 0, 0, 0], count, channels,
                                  gi * (channels // group), (gi + 1) * (channels // group), col,
                                  &g)
                    lowered = col
                gemm_rm(False, True, m_group, k_group, ld, 1, source + gi * m_group * ld, ld,
                        lowered, ld, 1,
                        &partial_weights[omp_get_thread_num(), gi * m_group * k_group], k_group)
        if want_bias:
            _add_row_sums(source, outputs, ld, ld, &partial_bias[omp_get_thread_num(), 0])
    if want_weights:
        for q in prange(size, nogil=True, schedule='static'):
            for t in range(threads):
                weight_diff[q // k_group, q % k_group] += partial_weights[t, q]
    if want_bias:
        _add_bias_partials(bias_diff, partial_bias)


cdef int _check_shapes(Py_ssize_t num, Py_ssize_t channels, Py_ssize_t outputs,
                       Py_ssize_t k_group, int group, const Lowering *g, Py_ssize_t col_num,
                       Py_ssize_t col_rows, Py_ssize_t col_pixels) except -1:
    """Groups, weights and the column side agree with the image side (both lowerings)."""
    cdef Py_ssize_t taps = g.kernel_h * g.kernel_w, pixels = g.out_h * g.out_w
    if group <= 0 or channels % group or outputs % group:
        raise ValueError('lowering: %d channels, %d outputs, group %d' % (channels, outputs, group))
    if k_group != channels // group * taps:
        raise ValueError('lowering: weights have %d columns, expected %d (channels/group * kh*kw)'
                         % (k_group, channels // group * taps))
    if col_num != num or col_rows != outputs or col_pixels != pixels:
        raise ValueError('lowering: the column side is (%d, %d, %d), expected (%d, %d, %d)'
                         % (col_num, col_rows, col_pixels, num, outputs, pixels))
    return 0


cdef int _start_partials(str name, bint want_weights, bint want_bias, Py_ssize_t size,
                         Py_ssize_t outputs, real[::1] bias_diff, real[:, ::1] partial_weights,
                         real[:, ::1] partial_bias) except -1:
    """Check a weight gradient's per-thread partial sums and bias diff, then zero the partial
    sums (one row per thread: ``size`` weight and ``outputs`` bias values)."""
    cdef Py_ssize_t t, threads = partial_weights.shape[0]
    if threads < omp_get_max_threads() or partial_bias.shape[0] < threads or \
            (want_weights and partial_weights.shape[1] < size) or \
            (want_bias and partial_bias.shape[1] < outputs):
        raise ValueError('%s: the partial sums need %d rows of %d and %d values'
                         % (name, omp_get_max_threads(), size, outputs))
    if want_bias and bias_diff.shape[0] != outputs:
        raise ValueError('%s: bias_diff has %d values for %d outputs'
                         % (name, bias_diff.shape[0], outputs))
    for t in range(threads):
        if want_weights:
            memset(&partial_weights[t, 0], 0, size * sizeof(real))
        if want_bias:
            memset(&partial_bias[t, 0], 0, outputs * sizeof(real))
    return 0


cdef void _add_bias_partials(real[::1] bias_diff, real[:, ::1] partial_bias) noexcept:
    """bias_diff += the threads' partial bias sums, added in thread order."""
    cdef Py_ssize_t m, t
    for m in range(bias_diff.shape[0]):
        for t in range(partial_bias.shape[0]):
            bias_diff[m] += partial_bias[t, m]


cdef int _check_lowered(Py_ssize_t num, Py_ssize_t channels, Py_ssize_t outputs,
                        Py_ssize_t k_group, int group, int partition, const Lowering *g,
                        Py_ssize_t col_num, Py_ssize_t col_rows, Py_ssize_t col_pixels,
                        real[:, ::1] col_scratch, real[:, ::1] row_scratch,
                        bint needs_columns) except -1:
    cdef Py_ssize_t pixels = g.out_h * g.out_w
    cdef Py_ssize_t threads = omp_get_max_threads()
    if partition <= 0:
        raise ValueError('lowering: partition %d' % partition)
    _check_shapes(num, channels, outputs, k_group, group, g, col_num, col_rows, col_pixels)
    if (needs_columns and (col_scratch.shape[0] < threads or
                           col_scratch.shape[1] < k_group * partition * pixels)) or \
            row_scratch.shape[0] < threads or row_scratch.shape[1] < outputs * partition * pixels:
        raise ValueError('lowering: scratch too small for %d threads and partitions of %d images'
                         % (threads, partition))
    return 0


# ------------------------------------------------------------------ row lowering (stride-1 rows)
# For a convolution with vertical stride 1, kernel row i of output row oh reads input row
# oh + i*dilation_h - pad_h. Lowering only the horizontal taps, R[(c, j), (hr, ow)] =
# x[c, hr - pad_h, ow*stride_w + j*dilation_w - pad_w] over hr in [0, out_h + (kh-1)*dilation_h),
# makes the full lowered matrix's rows of kernel row i the column window of R that starts at
# hr = i*dilation_h: a plain GEMM operand (same leading dimension, no copy). One image's product is
# then kh GEMMs with K = C/group*kw that accumulate into the output, and the lowering writes kw
# values per input value instead of kh*kw (a kh-th of the memory traffic, and a buffer that stays
# in cache). The weights are used as W'[i, m, c*kw + j] = W[m, c, i, j], permuted once per call.

cdef Lowering _rows_only(const Lowering *g) noexcept nogil:
    """The geometry of the row lowering R: a kernel one row high over out_h + (kh-1)*dilation_h
    output rows (``_lower_plane`` and ``_unlower_plane`` then build R and scatter it back)."""
    cdef Lowering r = g[0]
    r.out_h = g.out_h + (g.kernel_h - 1) * g.dilation_h
    r.kernel_h = 1
    r.stride_h = 1
    r.dilation_h = 1
    return r


def row_lowering_rows(tuple geometry):
    """The number of output rows R covers (out_h + (kh-1)*dilation_h) for ``geometry`` as given to
    ``lowered_forward``."""
    kernel_h, dilation_h, out_h = geometry[0], geometry[6], geometry[8]
    return out_h + (kernel_h - 1) * dilation_h


cdef int _check_rows(Py_ssize_t num, Py_ssize_t channels, Py_ssize_t outputs, Py_ssize_t k_group,
                     int group, const Lowering *g, Py_ssize_t col_num, Py_ssize_t col_rows,
                     Py_ssize_t col_pixels, real[:, ::1] col_scratch,
                     real[::1] permuted) except -1:
    cdef Py_ssize_t threads = omp_get_max_threads(), r_size
    if g.stride_h != 1:
        raise ValueError('row lowering needs a vertical stride of 1, not %d' % g.stride_h)
    _check_shapes(num, channels, outputs, k_group, group, g, col_num, col_rows, col_pixels)
    r_size = channels // group * g.kernel_w * _rows_only(g).out_h * g.out_w
    if col_scratch.shape[0] < threads or col_scratch.shape[1] < r_size:
        raise ValueError('row lowering: scratch needs %d rows of %d values' % (threads, r_size))
    if permuted.shape[0] < outputs * k_group:
        raise ValueError('row lowering: the permuted weights need %d values'
                         % (outputs * k_group))
    return 0


cdef void _permute_weights(const real *weights, Py_ssize_t outputs, Py_ssize_t channels,
                           Py_ssize_t kh, Py_ssize_t kw, real *permuted) noexcept nogil:
    """W (M, C, kh, kw) -> W' (kh, M, C*kw)."""
    cdef Py_ssize_t m, c, i, j
    for i in range(kh):
        for m in range(outputs):
            for c in range(channels):
                for j in range(kw):
                    permuted[(i * outputs + m) * channels * kw + c * kw + j] = \
                        weights[((m * channels + c) * kh + i) * kw + j]


def row_lowered_forward(const real[:, :, :, ::1] images, const real[:, ::1] weights,
                        const real[::1] bias, real[:, :, ::1] out, tuple geometry, int group,
                        real[:, ::1] col_scratch, real[::1] permuted):
    """``lowered_forward`` for vertical stride 1 through the row lowering (see above), one image
    per task. ``col_scratch`` holds one R per thread (C/group*kw * row_lowering_rows*out_w
    values); ``permuted`` gets W' (as many values as ``weights``)."""
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Lowering g = _lowering(geometry, images.shape[2], images.shape[3])
    cdef Lowering r = _rows_only(&g)
    cdef Py_ssize_t pixels = g.out_h * g.out_w, outputs = weights.shape[0]
    cdef Py_ssize_t k_group = weights.shape[1], m_group = outputs // group
    cdef Py_ssize_t c_group = channels // group, k_rows = c_group * g.kernel_w
    cdef Py_ssize_t ld = r.out_h * g.out_w, n, gi, i, m, p
    cdef bint has_bias = bias.shape[0] > 0
    cdef real *col
    cdef real *dst
    _check_rows(num, channels, outputs, k_group, group, &g, out.shape[0], out.shape[1],
                out.shape[2], col_scratch, permuted)
    if has_bias and bias.shape[0] != outputs:
        raise ValueError('row_lowered_forward: bias has %d values for %d outputs'
                         % (bias.shape[0], outputs))
    _permute_weights(&weights[0, 0], outputs, c_group, g.kernel_h, g.kernel_w, &permuted[0])
    for n in prange(num, nogil=True, schedule='dynamic'):
        col = &col_scratch[omp_get_thread_num(), 0]
        for gi in range(group):
            _lower_images(&images[n, 0, 0, 0], 1, channels, gi * c_group, (gi + 1) * c_group,
                          col, &r)
            dst = &out[n, gi * m_group, 0]
            for i in range(g.kernel_h):
                gemm_rm(False, False, m_group, pixels, k_rows, 1,
                        &permuted[(i * outputs + gi * m_group) * k_rows], k_rows,
                        col + i * g.dilation_h * g.out_w, ld, 0 if i == 0 else 1, dst, pixels)
        if has_bias:
            for m in range(outputs):
                for p in range(pixels):
                    out[n, m, p] = out[n, m, p] + bias[m]


def row_lowered_backward_data(const real[:, :, ::1] rows, const real[:, ::1] weights,
                              const real[::1] bias, real[:, :, :, ::1] images, tuple geometry,
                              int group, real[:, ::1] col_scratch, real[::1] permuted):
    """``lowered_backward_data`` for vertical stride 1 through the row lowering: per image and
    group, dR = sum over kernel rows i of W'_i^T @ rows (into R's window of row i), then R is
    scattered back. Scratch as for ``row_lowered_forward``."""
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Lowering g = _lowering(geometry, images.shape[2], images.shape[3])
    cdef Lowering r = _rows_only(&g)
    cdef Py_ssize_t pixels = g.out_h * g.out_w, outputs = weights.shape[0]
    cdef Py_ssize_t k_group = weights.shape[1], m_group = outputs // group
    cdef Py_ssize_t c_group = channels // group, k_rows = c_group * g.kernel_w
    cdef Py_ssize_t ld = r.out_h * g.out_w, plane = g.height * g.width
    cdef Py_ssize_t n, gi, i, ch, q, row
    cdef bint has_bias = bias.shape[0] > 0
    cdef real *col
    cdef real *dst
    _check_rows(num, channels, outputs, k_group, group, &g, rows.shape[0], rows.shape[1],
                rows.shape[2], col_scratch, permuted)
    if has_bias and bias.shape[0] != channels:
        raise ValueError('row_lowered_backward_data: bias has %d values for %d channels'
                         % (bias.shape[0], channels))
    _permute_weights(&weights[0, 0], outputs, c_group, g.kernel_h, g.kernel_w, &permuted[0])
    for n in prange(num, nogil=True, schedule='dynamic'):
        col = &col_scratch[omp_get_thread_num(), 0]
        for gi in range(group):
            # Kernel row 0's window is R's first out_h rows; the rest of R accumulates only.
            for row in range(k_rows):
                memset(col + row * ld + pixels, 0, (ld - pixels) * sizeof(real))
            for i in range(g.kernel_h):
                gemm_rm(True, False, k_rows, pixels, m_group, 1,
                        &permuted[(i * outputs + gi * m_group) * k_rows], k_rows,
                        &rows[n, gi * m_group, 0], pixels, 0 if i == 0 else 1,
                        col + i * g.dilation_h * g.out_w, ld)
            for ch in range(gi * c_group, (gi + 1) * c_group):
                dst = &images[n, ch, 0, 0]
                _unlower_plane(col + (ch - gi * c_group) * g.kernel_w * ld, ld, dst, &r)
                if has_bias:
                    for q in range(plane):
                        dst[q] = dst[q] + bias[ch]


def row_lowered_weight_grad(const real[:, :, :, ::1] images, const real[:, :, ::1] rows,
                            real[:, ::1] weight_diff, real[::1] bias_diff, bint want_weights,
                            tuple geometry, int group, real[:, ::1] col_scratch,
                            real[::1] permuted, real[:, ::1] partial_weights,
                            real[:, ::1] partial_bias):
    """``lowered_weight_grad`` for vertical stride 1 through the row lowering: each thread sums
    dW'_i += rows @ R_i^T over a fixed set of images (static schedule) into its row of
    ``partial_weights`` (W' layout); the rows are added in thread order and permuted back."""
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Lowering g = _lowering(geometry, images.shape[2], images.shape[3])
    cdef Lowering r = _rows_only(&g)
    cdef Py_ssize_t pixels = g.out_h * g.out_w, outputs = weight_diff.shape[0]
    cdef Py_ssize_t k_group = weight_diff.shape[1], m_group = outputs // group
    cdef Py_ssize_t c_group = channels // group, k_rows = c_group * g.kernel_w
    cdef Py_ssize_t ld = r.out_h * g.out_w, kh = g.kernel_h, kw = g.kernel_w
    cdef Py_ssize_t threads = partial_weights.shape[0], size = outputs * k_group
    cdef Py_ssize_t n, gi, i, m, j, t, q, c, p
    cdef bint want_bias = bias_diff.shape[0] > 0
    cdef real *col
    _check_rows(num, channels, outputs, k_group, group, &g, rows.shape[0], rows.shape[1],
                rows.shape[2], col_scratch, permuted)
    _start_partials('row_lowered_weight_grad', want_weights, want_bias, size, outputs, bias_diff,
                    partial_weights, partial_bias)
    for n in prange(num, nogil=True, schedule='static'):
        if want_weights:
            col = &col_scratch[omp_get_thread_num(), 0]
            for gi in range(group):
                _lower_images(&images[n, 0, 0, 0], 1, channels, gi * c_group,
                              (gi + 1) * c_group, col, &r)
                for i in range(kh):
                    gemm_rm(False, True, m_group, k_rows, pixels, 1, &rows[n, gi * m_group, 0],
                            pixels, col + i * g.dilation_h * g.out_w, ld, 1,
                            &partial_weights[omp_get_thread_num(),
                                             (i * outputs + gi * m_group) * k_rows], k_rows)
        if want_bias:
            _add_row_sums(&rows[n, 0, 0], outputs, pixels, pixels,
                          &partial_bias[omp_get_thread_num(), 0])
    if want_weights:
        # weight_diff[m, (c*kh + i)*kw + j] += sum_t W'-partial[t, i, m, c*kw + j]
        for m in prange(outputs, nogil=True, schedule='static'):
            for c in range(c_group):
                for i in range(kh):
                    for j in range(kw):
                        for t in range(threads):
                            weight_diff[m, (c * kh + i) * kw + j] += partial_weights[
                                t, (i * outputs + m) * k_rows + c * kw + j]
    if want_bias:
        _add_bias_partials(bias_diff, partial_bias)


# ------------------------------------------------------------------ panel lowering (stride-1 rows)
# The row lowering again, laid out in panels of one vector of output columns and multiplied by
# cct's own register-blocked kernels instead of BLAS (conv_panels.h): no GEMM packs R or the
# weights per call, all kernel rows accumulate in registers, and kernel rows that read only
# padding rows are skipped. Float and double alike; ``workspace.choose_lowering`` says where it
# pays.

cdef extern from "conv_panels.h" nogil:
    ctypedef struct cct_panels:
        int kernel_h, kernel_w, pad_h, pad_w, stride_w, dilation_h, dilation_w
        int out_h, out_w, height, width, channels, outputs
        int lanes, ppr, rows, top_pad, k, k_w, k_r, k_d, m_p, m_t
    void cct_panels_init(cct_panels *g, int itemsize)
    Py_ssize_t cct_panels_r_size(const cct_panels *g)
    Py_ssize_t cct_panels_top_size(const cct_panels *g)
    Py_ssize_t cct_panels_top_t_size(const cct_panels *g)
    Py_ssize_t cct_panels_weight_sums(const cct_panels *g)
    Py_ssize_t cct_panels_work(const cct_panels *g, int data_gradient)
    Py_ssize_t cct_panels_dr_size(const cct_panels *g)
    Py_ssize_t cct_panels_forward_weights(const cct_panels *g)
    Py_ssize_t cct_panels_backward_weights(const cct_panels *g)
    void cct_panels_pack_forward_f(const float *w, Py_ssize_t ldw, const cct_panels *g, float *wf)
    void cct_panels_pack_forward_d(const double *w, Py_ssize_t ldw, const cct_panels *g,
                                   double *wf)
    void cct_panels_pack_backward_f(const float *w, Py_ssize_t ldw, const cct_panels *g,
                                    float *wb)
    void cct_panels_pack_backward_d(const double *w, Py_ssize_t ldw, const cct_panels *g,
                                    double *wb)
    void cct_panels_lower_f(const float *x, const cct_panels *g, float *R)
    void cct_panels_lower_d(const double *x, const cct_panels *g, double *R)
    void cct_panels_forward_f(const float *wf, const float *R, const cct_panels *g,
                              const float *bias, float *out)
    void cct_panels_forward_d(const double *wf, const double *R, const cct_panels *g,
                              const double *bias, double *out)
    void cct_panels_pack_top_f(const float *dy, const cct_panels *g, float *tp)
    void cct_panels_pack_top_d(const double *dy, const cct_panels *g, double *tp)
    void cct_panels_backward_data_f(const float *wb, const float *tp, const cct_panels *g,
                                    float *dR)
    void cct_panels_backward_data_d(const double *wb, const double *tp, const cct_panels *g,
                                    double *dR)
    void cct_panels_unlower_f(const float *dR, const cct_panels *g, float *x)
    void cct_panels_unlower_d(const double *dR, const cct_panels *g, double *x)
    void cct_panels_pack_top_t_f(const float *dy, const cct_panels *g, float *tt)
    void cct_panels_pack_top_t_d(const double *dy, const cct_panels *g, double *tt)
    void cct_panels_weight_grad_f(const float *tt, const float *R, int count, const cct_panels *g,
                                  float *partial)
    void cct_panels_weight_grad_d(const double *tt, const double *R, int count,
                                  const cct_panels *g, double *partial)


cdef cct_panels _panels(tuple geometry, Py_ssize_t height, Py_ssize_t width, Py_ssize_t channels,
                        Py_ssize_t outputs, int itemsize) except *:
    """The panel layout of one group: ``channels`` and ``outputs`` per group."""
    cdef cct_panels g
    cdef int stride_h
    (g.kernel_h, g.kernel_w, g.pad_h, g.pad_w, stride_h, g.stride_w, g.dilation_h, g.dilation_w,
     g.out_h, g.out_w) = geometry
    if stride_h != 1:
        raise ValueError('panel lowering needs a vertical stride of 1, not %d' % stride_h)
    g.height, g.width, g.channels, g.outputs = height, width, channels, outputs
    check_conv_axis('panel lowering', 'height', height, g.out_h, g.kernel_h, stride_h, g.pad_h,
                    g.dilation_h)
    check_conv_axis('panel lowering', 'width', width, g.out_w, g.kernel_w, g.stride_w, g.pad_w,
                    g.dilation_w)
    cct_panels_init(&g, itemsize)
    return g


def panel_sizes(tuple geometry, Py_ssize_t height, Py_ssize_t width, Py_ssize_t channels,
                Py_ssize_t outputs, int itemsize):
    """The panel buffers' sizes in values, for one group of ``channels`` image-side planes
    (height x width) and ``outputs`` column-side planes: per image 'r' (R), 'top' (the top's
    panels), 'dr' (dR) and 'top_t' (the pixel-major top); per group 'forward_weights' and
    'backward_weights' (packed) and 'weight_sums' (a thread's weight-gradient sums). Also the
    work of the forward product and of the data gradient ('forward_work', 'data_work'): panels
    times the kernel rows run for them, against 'rows_work' for the row lowering's GEMMs
    (out_h*kh rows of panels), 'lanes' per panel and 'weight_rows', the rows of R per block of
    the weight gradient (3, by 4 vectors of outputs, where the outputs fill a multiple of 4
    vectors; else 4, by up to 3)."""
    cdef cct_panels g = _panels(geometry, height, width, channels, outputs, itemsize)
    return {'lanes': g.lanes, 'weight_rows': g.k_w, 'forward_work': cct_panels_work(&g, 0),
            'data_work': cct_panels_work(&g, 1), 'rows_work': g.out_h * g.ppr * g.kernel_h,
            'r': cct_panels_r_size(&g), 'top': cct_panels_top_size(&g),
            'dr': cct_panels_dr_size(&g), 'top_t': cct_panels_top_t_size(&g),
            'forward_weights': cct_panels_forward_weights(&g),
            'backward_weights': cct_panels_backward_weights(&g),
            'weight_sums': cct_panels_weight_sums(&g)}


cdef int _check_panels(str name, real[:, ::1] first, Py_ssize_t first_size,
                       real[:, ::1] second, Py_ssize_t second_size) except -1:
    """Each of the two per-thread scratch buffers has a row of the given size per thread."""
    cdef Py_ssize_t threads = omp_get_max_threads()
    if first.shape[0] < threads or first.shape[1] < first_size or \
            second.shape[0] < threads or second.shape[1] < second_size:
        raise ValueError('%s: scratch needs %d rows of %d and %d values'
                         % (name, threads, first_size, second_size))
    return 0


cdef int _check_packed(str name, real[::1] packed, Py_ssize_t size) except -1:
    if packed.shape[0] < size:
        raise ValueError('%s: the packed weights need %d values' % (name, size))
    return 0


cdef Py_ssize_t _pack_panel_weights(str name, const real[:, ::1] weights, int group,
                                    const cct_panels *g, real[::1] packed,
                                    bint backward) except -1:
    """Every group's weights packed for the forward product (or the data gradient) into
    ``packed``, one group after another; returns the values per group."""
    cdef Py_ssize_t gi, size = (cct_panels_backward_weights(g) if backward
                                else cct_panels_forward_weights(g))
    _check_packed(name, packed, group * size)
    for gi in range(group):
        if real is float:
            if backward:
                cct_panels_pack_backward_f(&weights[gi * g.outputs, 0], weights.shape[1], g,
                                           &packed[gi * size])
            else:
                cct_panels_pack_forward_f(&weights[gi * g.outputs, 0], weights.shape[1], g,
                                          &packed[gi * size])
        else:
            if backward:
                cct_panels_pack_backward_d(&weights[gi * g.outputs, 0], weights.shape[1], g,
                                           &packed[gi * size])
            else:
                cct_panels_pack_forward_d(&weights[gi * g.outputs, 0], weights.shape[1], g,
                                          &packed[gi * size])
    return size


def panel_forward(const real[:, :, :, ::1] images, const real[:, ::1] weights,
                  const real[::1] bias, real[:, :, ::1] out, tuple geometry, int group,
                  real[:, ::1] r_scratch, real[::1] packed):
    """``lowered_forward`` through the panel lowering, one image per task. ``r_scratch`` holds
    one R per thread, ``packed`` every group's packed weights (``panel_sizes``)."""
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1], outputs = weights.shape[0]
    cdef Lowering low = _lowering(geometry, images.shape[2], images.shape[3])
    cdef Py_ssize_t m_group = outputs // group, c_group = channels // group, n, gi, pw
    cdef cct_panels g
    cdef bint has_bias = bias.shape[0] > 0
    cdef real *R
    _check_shapes(num, channels, outputs, weights.shape[1], group, &low, out.shape[0],
                  out.shape[1], out.shape[2])
    if has_bias and bias.shape[0] != outputs:
        raise ValueError('panel_forward: bias has %d values for %d outputs'
                         % (bias.shape[0], outputs))
    g = _panels(geometry, low.height, low.width, c_group, m_group, sizeof(real))
    _check_panels('panel_forward', r_scratch, cct_panels_r_size(&g), r_scratch, 0)
    pw = _pack_panel_weights('panel_forward', weights, group, &g, packed, False)
    if num == 0:
        return
    for n in prange(num, nogil=True, schedule='dynamic'):
        R = &r_scratch[omp_get_thread_num(), 0]
        for gi in range(group):
            if real is float:
                cct_panels_lower_f(&images[n, gi * c_group, 0, 0], &g, R)
                cct_panels_forward_f(&packed[gi * pw], R, &g,
                                     &bias[gi * m_group] if has_bias else NULL,
                                     &out[n, gi * m_group, 0])
            else:
                cct_panels_lower_d(&images[n, gi * c_group, 0, 0], &g, R)
                cct_panels_forward_d(&packed[gi * pw], R, &g,
                                     &bias[gi * m_group] if has_bias else NULL,
                                     &out[n, gi * m_group, 0])


def panel_backward_data(const real[:, :, ::1] rows, const real[:, ::1] weights,
                        const real[::1] bias, real[:, :, :, ::1] images, tuple geometry,
                        int group, real[:, ::1] top_scratch, real[:, ::1] dr_scratch,
                        real[::1] packed):
    """``lowered_backward_data`` through the panel lowering: per image and group the top's diff
    is put in panels, dR computed for the lowered rows that hold image rows, and scattered back.
    ``top_scratch`` and ``dr_scratch`` hold one of each per thread (``panel_sizes``)."""
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1], outputs = weights.shape[0]
    cdef Lowering low = _lowering(geometry, images.shape[2], images.shape[3])
    cdef Py_ssize_t m_group = outputs // group, c_group = channels // group
    cdef Py_ssize_t plane = low.height * low.width, n, gi, pw, ch, q
    cdef cct_panels g
    cdef bint has_bias = bias.shape[0] > 0
    cdef real *tp
    cdef real *dR
    cdef real *dst
    _check_shapes(num, channels, outputs, weights.shape[1], group, &low, rows.shape[0],
                  rows.shape[1], rows.shape[2])
    if has_bias and bias.shape[0] != channels:
        raise ValueError('panel_backward_data: bias has %d values for %d channels'
                         % (bias.shape[0], channels))
    g = _panels(geometry, low.height, low.width, c_group, m_group, sizeof(real))
    _check_panels('panel_backward_data', top_scratch, cct_panels_top_size(&g), dr_scratch,
                  cct_panels_dr_size(&g))
    pw = _pack_panel_weights('panel_backward_data', weights, group, &g, packed, True)
    if num == 0:
        return
    for n in prange(num, nogil=True, schedule='dynamic'):
        tp = &top_scratch[omp_get_thread_num(), 0]
        dR = &dr_scratch[omp_get_thread_num(), 0]
        for gi in range(group):
            if real is float:
                cct_panels_pack_top_f(&rows[n, gi * m_group, 0], &g, tp)
                cct_panels_backward_data_f(&packed[gi * pw], tp, &g, dR)
                cct_panels_unlower_f(dR, &g, &images[n, gi * c_group, 0, 0])
            else:
                cct_panels_pack_top_d(&rows[n, gi * m_group, 0], &g, tp)
                cct_panels_backward_data_d(&packed[gi * pw], tp, &g, dR)
                cct_panels_unlower_d(dR, &g, &images[n, gi * c_group, 0, 0])
        if has_bias:
            for ch in range(channels):
                dst = &images[n, ch, 0, 0]
                for q in range(plane):
                    dst[q] = dst[q] + bias[ch]


def panel_weight_grad(const real[:, :, :, ::1] images, const real[:, :, ::1] rows,
                      real[:, ::1] weight_diff, real[::1] bias_diff, bint want_weights,
                      tuple geometry, int group, int partition, real[:, ::1] r_scratch,
                      real[:, ::1] top_scratch, real[:, ::1] partial_weights,
                      real[:, ::1] partial_bias):
    """``lowered_weight_grad`` through the panel lowering: each task lowers ``partition`` images
    (their R and pixel-major tops one after another in the thread's scratch) and sums their
    products into the thread's row of ``partial_weights`` (``weight_sums`` values per group);
    tasks are a fixed set per thread (static schedule) and the rows are added in thread order."""
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Py_ssize_t outputs = weight_diff.shape[0], k_group = weight_diff.shape[1]
    cdef Lowering low = _lowering(geometry, images.shape[2], images.shape[3])
    cdef Py_ssize_t m_group = outputs // group, c_group = channels // group
    cdef Py_ssize_t kh = low.kernel_h, kw = low.kernel_w
    cdef Py_ssize_t parts, part, start, count, n, gi, m, c, i, j, t, r_size, t_size, sums
    cdef Py_ssize_t threads = partial_weights.shape[0], k_r, m_t
    cdef cct_panels g
    cdef bint want_bias = bias_diff.shape[0] > 0
    cdef real *R
    cdef real *tt
    if partition <= 0:
        raise ValueError('lowering: partition %d' % partition)
    _check_shapes(num, channels, outputs, k_group, group, &low, rows.shape[0], rows.shape[1],
                  rows.shape[2])
    g = _panels(geometry, low.height, low.width, c_group, m_group, sizeof(real))
    r_size = cct_panels_r_size(&g)
    t_size = cct_panels_top_t_size(&g)
    sums = cct_panels_weight_sums(&g)
    k_r, m_t = g.k_r, g.m_t
    if want_weights:
        _check_panels('panel_weight_grad', r_scratch, partition * r_size, top_scratch,
                      partition * t_size)
    _start_partials('panel_weight_grad', want_weights, want_bias, group * sums, outputs,
                    bias_diff, partial_weights, partial_bias)
    parts = _ceil_div(num, partition)
    for part in prange(parts, nogil=True, schedule='static'):
        start = part * partition
        count = min(partition, num - start)
        if want_weights:
            R = &r_scratch[omp_get_thread_num(), 0]
            tt = &top_scratch[omp_get_thread_num(), 0]
            for gi in range(group):
                for n in range(count):
                    if real is float:
                        cct_panels_lower_f(&images[start + n, gi * c_group, 0, 0], &g,
                                           R + n * r_size)
                        cct_panels_pack_top_t_f(&rows[start + n, gi * m_group, 0], &g,
                                                tt + n * t_size)
                    else:
                        cct_panels_lower_d(&images[start + n, gi * c_group, 0, 0], &g,
                                           R + n * r_size)
                        cct_panels_pack_top_t_d(&rows[start + n, gi * m_group, 0], &g,
                                                tt + n * t_size)
                if real is float:
                    cct_panels_weight_grad_f(tt, R, count, &g,
                                             &partial_weights[omp_get_thread_num(), gi * sums])
                else:
                    cct_panels_weight_grad_d(tt, R, count, &g,
                                             &partial_weights[omp_get_thread_num(), gi * sums])
        if want_bias:
            for n in range(count):
                _add_row_sums(&rows[start + n, 0, 0], outputs, low.out_h * low.out_w,
                              low.out_h * low.out_w, &partial_bias[omp_get_thread_num(), 0])
    if want_weights:
        # weight_diff[gi*m_group + m, (c*kh + i)*kw + j] += sum_t sums[t, gi, i, c*kw + j, m]
        for m in prange(outputs, nogil=True, schedule='static'):
            gi = m // m_group
            for c in range(c_group):
                for i in range(kh):
                    for j in range(kw):
                        for t in range(threads):
                            weight_diff[m, (c * kh + i) * kw + j] += partial_weights[
                                t, gi * sums + (i * k_r + c * kw + j) * m_t + m % m_group]
    if want_bias:
        _add_bias_partials(bias_diff, partial_bias)


# ------------------------------------------------------------------------ plain im2col / col2im
def im2col(const real[:, :, :, ::1] images, real[:, ::1] col, int kernel_h, int kernel_w,
           int pad_h, int pad_w, int stride_h, int stride_w, int dilation_h, int dilation_w,
           int out_h, int out_w):
    """Lower ``images`` (N, C, H, W) into ``col`` (C*kh*kw, N*out_h*out_w); padding reads as 0."""
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Lowering g = _lowering((kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dilation_h,
                                 dilation_w, out_h, out_w), images.shape[2], images.shape[3])
    cdef Py_ssize_t pixels = out_h * out_w, ld = col.shape[1]
    cdef Py_ssize_t task, n, ch, taps = kernel_h * kernel_w
    if col.shape[0] != channels * taps or col.shape[1] != num * pixels:
        raise ValueError('im2col: column buffer has shape (%d, %d), expected (%d, %d)'
                         % (col.shape[0], col.shape[1], channels * taps, num * pixels))
    if num == 0 or channels == 0:
        return
    for task in prange(num * channels, nogil=True, schedule='static'):
        n = task // channels
        ch = task % channels
        _lower_plane(&images[n, ch, 0, 0], &col[ch * taps, n * pixels], ld, &g)


def col2im(const real[:, ::1] col, real[:, :, :, ::1] images, int kernel_h, int kernel_w,
           int pad_h, int pad_w, int stride_h, int stride_w, int dilation_h, int dilation_w,
           int out_h, int out_w):
    """Scatter-add ``col`` (C*kh*kw, N*out_h*out_w) back into ``images`` (N, C, H, W), which is
    overwritten (not accumulated into), as Caffe's col2im_cpu does."""
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Lowering g = _lowering((kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dilation_h,
                                 dilation_w, out_h, out_w), images.shape[2], images.shape[3])
    cdef Py_ssize_t pixels = out_h * out_w, ld = col.shape[1]
    cdef Py_ssize_t task, n, ch, taps = kernel_h * kernel_w
    if col.shape[0] != channels * taps or col.shape[1] != num * pixels:
        raise ValueError('col2im: column buffer has shape (%d, %d), expected (%d, %d)'
                         % (col.shape[0], col.shape[1], channels * taps, num * pixels))
    if num == 0 or channels == 0 or g.height == 0 or g.width == 0:
        return
    for task in prange(num * channels, nogil=True, schedule='static'):
        n = task // channels
        ch = task % channels
        _unlower_plane(&col[ch * taps, n * pixels], ld, &images[n, ch, 0, 0], &g)
