"""MAX and AVE pooling forward/backward over (N, C, H, W) planes (Caffe's pooling_layer.cpp, CPU path).

Each (image, channel) plane is independent, so planes are split across cores. Window arithmetic is
Caffe's exactly: MAX clips the window to the image and keeps the first maximum (strict ``>``); AVE
divides by the window clipped to the *padded* extent [-pad, size + pad), but sums only real pixels.
"""
from cython.parallel cimport prange
from libc.string cimport memset
from libc.float cimport FLT_MAX

from cct.kernels.bounds cimport check_pool_axis, dims


cdef extern from "pool_simd.h" nogil:
    void cct_max8_stride2(const float *plane, int width, int h0, int h1, int w0, int kernel_w,
                          float *top, int *where)

ctypedef fused real:
    float
    double

# A window's argmax as its flat index in the plane: 16 bits when planes have fewer than 65535
# pixels (the common case, half the memory), else 32. "No maximum" (a window of -inf or NaN only)
# is -1, or 65535 in 16 bits.
ctypedef fused index_t:
    int
    unsigned short


cdef int _check_planes(str kernel, Py_ssize_t num, Py_ssize_t channels, Py_ssize_t height,
                       Py_ssize_t width, Py_ssize_t top_num, Py_ssize_t top_channels,
                       Py_ssize_t out_h, Py_ssize_t out_w, int kernel_h, int kernel_w, int pad_h,
                       int pad_w, int stride_h, int stride_w) except -1:
    """The image and pooled planes agree in number, and the windows stay in the padded planes."""
    if top_num != num or top_channels != channels:
        raise ValueError('%s: the pooled blob has %d x %d planes, the input %d x %d'
                         % (kernel, top_num, top_channels, num, channels))
    check_pool_axis(kernel, 'height', height, out_h, kernel_h, stride_h, pad_h)
    check_pool_axis(kernel, 'width', width, out_w, kernel_w, stride_w, pad_w)
    return 0


cdef int _check_mask(str kernel, Py_ssize_t plane, tuple mask_shape, tuple top_shape,
                     bint small) except -1:
    """The argmax mask is shaped as the pooled blob and its type holds every index of a plane."""
    if mask_shape != top_shape:
        raise ValueError('%s: the mask has shape %s, the pooled blob %s'
                         % (kernel, mask_shape, top_shape))
    if small and plane >= 65535:
        raise ValueError('%s: 16-bit argmaxes for planes of %d pixels (at most 65534)'
                         % (kernel, plane))
    return 0


cdef enum:
    CHUNK = 64   # outputs of one row handled together (their windows are scanned in lockstep)


cdef inline void _column_range(int first, int stride, int offset, int size, int count,
                               int *lo, int *hi) noexcept nogil:
    """The k in [0, count) with 0 <= (first + k)*stride + offset < size, as [lo, hi)."""
    cdef int base = first * stride + offset
    cdef int a = 0, b = count
    if base < 0:
        a = (-base + stride - 1) // stride
    if base + (count - 1) * stride >= size:
        b = (size - base + stride - 1) // stride if size > base else 0
    if b < a:
        b = a
    lo[0] = a
    hi[0] = b


cdef inline void _inside_columns(int width, int out_w, int kernel_w, int pad_w, int stride_w,
                                 int *lo, int *hi) noexcept nogil:
    """[lo, hi): the output columns whose window lies inside the image horizontally."""
    cdef int a = (pad_w + stride_w - 1) // stride_w
    cdef int b = (width + pad_w - kernel_w) // stride_w + 1 if width + pad_w >= kernel_w else 0
    b = min(b, out_w)
    lo[0] = a
    hi[0] = b if b > a else a


cdef void _max_pool_row(const real *plane, int height, int width, int ph, int out_w,
                        int kernel_h, int kernel_w, int pad_h, int pad_w, int stride_h,
                        int stride_w, real *top, index_t *mask) noexcept nogil:
    """One output row of MAX pooling: each window scanned in Caffe's order (rows, then columns),
    keeping the first strict maximum, with selects instead of branches (the comparisons' outcomes
    are data, not predictable). Windows inside the image go eight at a time in vector lanes
    (float, horizontal stride 2: pool_simd.h) or else four at a time, so that the chains of
    compare-and-select overlap instead of waiting on each other."""
    cdef int hstart = ph * stride_h - pad_h, hend, h, j, w, pw, wstart, wend, where, lo, hi
    cdef int w0, i0, i1, i2, i3, k, first
    cdef int found[8]
    cdef real v, best, v0, v1, v2, v3, b0, b1, b2, b3
    cdef const real *row
    hend = min(hstart + kernel_h, height)
    hstart = max(hstart, 0)
    _inside_columns(width, out_w, kernel_w, pad_w, stride_w, &lo, &hi)
    pw = 0
    while pw < out_w:
        if real is float:
            if stride_w == 2 and lo <= pw < hi and hi - lo >= 8:
                first = min(pw, hi - 8)   # the last eight may overlap the previous eight
                cct_max8_stride2(plane, width, hstart, hend, first * 2 - pad_w, kernel_w,
                                 top + first, found)
                for k in range(8):
                    mask[first + k] = <index_t>found[k]
                pw = first + 8
                continue
        if pw >= lo and pw + 4 <= hi:
            w0 = pw * stride_w - pad_w
            b0 = b1 = b2 = b3 = -FLT_MAX
            i0 = i1 = i2 = i3 = -1
            for h in range(hstart, hend):
                row = plane + h * width + w0
                for j in range(kernel_w):
                    w = h * width + w0 + j
                    v0 = row[j]
                    v1 = row[j + stride_w]
                    v2 = row[j + 2 * stride_w]
                    v3 = row[j + 3 * stride_w]
                    i0 = w if v0 > b0 else i0
                    i1 = w + stride_w if v1 > b1 else i1
                    i2 = w + 2 * stride_w if v2 > b2 else i2
                    i3 = w + 3 * stride_w if v3 > b3 else i3
                    b0 = v0 if v0 > b0 else b0
                    b1 = v1 if v1 > b1 else b1
                    b2 = v2 if v2 > b2 else b2
                    b3 = v3 if v3 > b3 else b3
            top[pw] = b0
            top[pw + 1] = b1
            top[pw + 2] = b2
            top[pw + 3] = b3
            mask[pw] = <index_t>i0
            mask[pw + 1] = <index_t>i1
            mask[pw + 2] = <index_t>i2
            mask[pw + 3] = <index_t>i3
            pw += 4
            continue
        wstart = pw * stride_w - pad_w
        wend = min(wstart + kernel_w, width)
        wstart = max(wstart, 0)
        best = -FLT_MAX
        where = -1
        for h in range(hstart, hend):
            row = plane + h * width
            for w in range(wstart, wend):
                v = row[w]
                where = h * width + w if v > best else where
                best = v if v > best else best
        top[pw] = best
        mask[pw] = <index_t>where
        pw += 1


def max_pool_forward(const real[:, :, :, ::1] bottom, real[:, :, :, ::1] top,
                     index_t[:, :, :, ::1] mask, int kernel_h, int kernel_w, int pad_h, int pad_w,
                     int stride_h, int stride_w):
    """``top`` gets each window's maximum, ``mask`` its flat index within the plane."""
    cdef Py_ssize_t num = bottom.shape[0], channels = bottom.shape[1]
    cdef int height = bottom.shape[2], width = bottom.shape[3]
    cdef int out_h = top.shape[2], out_w = top.shape[3]
    cdef Py_ssize_t task, plane = height * width, outputs = out_h * out_w
    cdef int ph
    _check_planes('max_pool_forward', num, channels, height, width, top.shape[0], top.shape[1],
                  out_h, out_w, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w)
    _check_mask('max_pool_forward', plane, dims(mask.shape, 4), dims(top.shape, 4),
                sizeof(index_t) == 2)
    if num * channels == 0 or outputs == 0:
        return
    for task in prange(num * channels, nogil=True, schedule='static'):
        for ph in range(out_h):
            _max_pool_row(&bottom[0, 0, 0, 0] + task * plane, height, width, ph, out_w,
                          kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w,
                          &top[0, 0, 0, 0] + task * outputs + ph * out_w,
                          &mask[0, 0, 0, 0] + task * outputs + ph * out_w)


def max_pool_backward(const real[:, :, :, ::1] top_diff, const index_t[:, :, :, ::1] mask,
                      real[:, :, :, ::1] bottom_diff):
    """Route each top gradient to its window's argmax; ``bottom_diff`` is overwritten."""
    cdef Py_ssize_t num = bottom_diff.shape[0], channels = bottom_diff.shape[1]
    cdef Py_ssize_t plane = bottom_diff.shape[2] * bottom_diff.shape[3]
    cdef Py_ssize_t outputs = top_diff.shape[2] * top_diff.shape[3]
    cdef Py_ssize_t task, q
    cdef real *grad
    cdef const real *source
    cdef const index_t *index
    cdef index_t none = <index_t>-1
    cdef Py_ssize_t outside = 0
    if top_diff.shape[0] != num or top_diff.shape[1] != channels:
        raise ValueError('max_pool_backward: the pooled gradient has %d x %d planes, the input '
                         '%d x %d' % (top_diff.shape[0], top_diff.shape[1], num, channels))
    _check_mask('max_pool_backward', plane, dims(mask.shape, 4), dims(top_diff.shape, 4),
                sizeof(index_t) == 2)
    if num * channels == 0 or plane == 0:
        return
    for task in prange(num * channels, nogil=True, schedule='static'):
        grad = &bottom_diff[0, 0, 0, 0] + task * plane
        source = &top_diff[0, 0, 0, 0] + task * outputs
        index = &mask[0, 0, 0, 0] + task * outputs
        memset(grad, 0, plane * sizeof(real))
        for q in range(outputs):
            # An index beyond the plane (a mask from another input shape) is counted, not written.
            if index[q] != none:
                if <Py_ssize_t>index[q] < plane:
                    grad[index[q]] += source[q]
                else:
                    outside += 1
    if outside:
        raise ValueError('max_pool_backward: %d argmaxes lie outside planes of %d pixels (a mask '
                         'from another input shape?)' % (outside, plane))


cdef inline int _pool_size(int start, int kernel, int size, int pad) noexcept nogil:
    """Caffe's AVE divisor along one axis: the window clipped to the padded extent."""
    return min(start + kernel, size + pad) - start


cdef void _ave_pool_row(const real *plane, int height, int width, int ph, int out_w,
                        int kernel_h, int kernel_w, int pad_h, int pad_w, int stride_h,
                        int stride_w, real *top) noexcept nogil:
    """One output row of AVE pooling, each window summed in Caffe's order (rows, then columns);
    windows inside the image go four at a time so that their chains of adds overlap."""
    cdef int hstart = ph * stride_h - pad_h, hend, h, j, w, pw, wstart, wend, rows, lo, hi, w0
    cdef real total, t0, t1, t2, t3
    cdef const real *row
    rows = _pool_size(hstart, kernel_h, height, pad_h)
    hend = min(hstart + kernel_h, height)
    hstart = max(hstart, 0)
    _inside_columns(width, out_w, kernel_w, pad_w, stride_w, &lo, &hi)
    pw = 0
    while pw < out_w:
        if pw >= lo and pw + 4 <= hi:
            w0 = pw * stride_w - pad_w
            t0 = t1 = t2 = t3 = 0
            for h in range(hstart, hend):
                row = plane + h * width + w0
                for j in range(kernel_w):
                    t0 = t0 + row[j]
                    t1 = t1 + row[j + stride_w]
                    t2 = t2 + row[j + 2 * stride_w]
                    t3 = t3 + row[j + 3 * stride_w]
            # Inside the image horizontally, every window spans kernel_w padded columns.
            top[pw] = t0 / (rows * kernel_w)
            top[pw + 1] = t1 / (rows * kernel_w)
            top[pw + 2] = t2 / (rows * kernel_w)
            top[pw + 3] = t3 / (rows * kernel_w)
            pw += 4
            continue
        wstart = pw * stride_w - pad_w
        wend = min(wstart + kernel_w, width)
        total = 0
        for h in range(hstart, hend):
            row = plane + h * width
            for w in range(max(wstart, 0), wend):
                total = total + row[w]
        top[pw] = total / (rows * _pool_size(wstart, kernel_w, width, pad_w))
        pw += 1


def ave_pool_forward(const real[:, :, :, ::1] bottom, real[:, :, :, ::1] top,
                     int kernel_h, int kernel_w, int pad_h, int pad_w, int stride_h, int stride_w):
    cdef Py_ssize_t num = bottom.shape[0], channels = bottom.shape[1]
    cdef int height = bottom.shape[2], width = bottom.shape[3]
    cdef int out_h = top.shape[2], out_w = top.shape[3]
    cdef Py_ssize_t task, plane = height * width, outputs = out_h * out_w
    cdef int ph
    _check_planes('ave_pool_forward', num, channels, height, width, top.shape[0], top.shape[1],
                  out_h, out_w, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w)
    if num * channels == 0 or outputs == 0:
        return
    for task in prange(num * channels, nogil=True, schedule='static'):
        for ph in range(out_h):
            _ave_pool_row(&bottom[0, 0, 0, 0] + task * plane, height, width, ph, out_w,
                          kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w,
                          &top[0, 0, 0, 0] + task * outputs + ph * out_w)


cdef void _ave_unpool_row(const real *top, int height, int width, int ph, int out_w,
                          int kernel_h, int kernel_w, int pad_h, int pad_w, int stride_h,
                          int stride_w, real *plane) noexcept nogil:
    """Spread one row of top gradients over their windows. An input pixel gets the shares of the
    row's windows in Caffe's order (output column ascending): the kernel columns go right to left,
    so for one pixel the window index rises."""
    cdef real share[CHUNK]
    cdef int hstart = ph * stride_h - pad_h, hend, h, j, k, lo, hi, first, count, offset, rows
    cdef int j_lo, j_hi
    cdef real *row
    rows = _pool_size(hstart, kernel_h, height, pad_h)
    hend = min(hstart + kernel_h, height)
    hstart = max(hstart, 0)
    first = 0
    while first < out_w:
        count = min(CHUNK, out_w - first)
        for k in range(count):
            share[k] = top[first + k] / (rows * _pool_size((first + k) * stride_w - pad_w,
                                                           kernel_w, width, pad_w))
        # Only kernel columns that reach into the image for some window of the chunk: a kernel
        # far wider than the image must not cost a pass per column.
        j_lo = max(0, pad_w - (first + count - 1) * stride_w)
        j_hi = min(kernel_w - 1, width - 1 + pad_w - first * stride_w)
        for h in range(hstart, hend):
            row = plane + h * width
            for j in range(j_hi, j_lo - 1, -1):
                offset = j - pad_w
                _column_range(first, stride_w, offset, width, count, &lo, &hi)
                for k in range(lo, hi):
                    row[(first + k) * stride_w + offset] += share[k]
        first += CHUNK


def ave_pool_backward(const real[:, :, :, ::1] top_diff, real[:, :, :, ::1] bottom_diff,
                      int kernel_h, int kernel_w, int pad_h, int pad_w, int stride_h, int stride_w):
    """Spread each top gradient evenly over its window; ``bottom_diff`` is overwritten."""
    cdef Py_ssize_t num = bottom_diff.shape[0], channels = bottom_diff.shape[1]
    cdef int height = bottom_diff.shape[2], width = bottom_diff.shape[3]
    cdef int out_h = top_diff.shape[2], out_w = top_diff.shape[3]
    cdef Py_ssize_t task, plane = height * width, outputs = out_h * out_w
    cdef int ph
    _check_planes('ave_pool_backward', num, channels, height, width, top_diff.shape[0],
                  top_diff.shape[1], out_h, out_w, kernel_h, kernel_w, pad_h, pad_w, stride_h,
                  stride_w)
    if num * channels == 0 or plane == 0:
        return
    for task in prange(num * channels, nogil=True, schedule='static'):
        memset(&bottom_diff[0, 0, 0, 0] + task * plane, 0, plane * sizeof(real))
        for ph in range(out_h):
            _ave_unpool_row(&top_diff[0, 0, 0, 0] + task * outputs + ph * out_w, height, width,
                            ph, out_w, kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w,
                            &bottom_diff[0, 0, 0, 0] + task * plane)
