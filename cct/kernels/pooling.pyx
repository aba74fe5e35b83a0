"""MAX and AVE pooling forward/backward over (N, C, H, W) planes (Caffe's pooling_layer.cpp, CPU path).

Each (image, channel) plane is independent, so planes are split across cores. Window arithmetic is
Caffe's exactly: MAX clips the window to the image and keeps the first maximum (strict ``>``); AVE
divides by the window clipped to the *padded* extent [-pad, size + pad), but sums only real pixels.
"""
from cython.parallel cimport prange
from libc.string cimport memset
from libc.float cimport FLT_MAX

ctypedef fused real:
    float
    double

# A window's argmax as its flat index in the plane: 16 bits when planes have fewer than 65535
# pixels (the common case, half the memory), else 32. "No maximum" (a window of -inf or NaN only)
# is -1, or 65535 in 16 bits.
ctypedef fused index_t:
    int
    unsigned short


def max_pool_forward(const real[:, :, :, ::1] bottom, real[:, :, :, ::1] top,
                     index_t[:, :, :, ::1] mask, int kernel_h, int kernel_w, int pad_h, int pad_w,
                     int stride_h, int stride_w):
    """``top`` gets each window's maximum, ``mask`` its flat index within the plane."""
    cdef Py_ssize_t num = bottom.shape[0], channels = bottom.shape[1]
    cdef int height = bottom.shape[2], width = bottom.shape[3]
    cdef int out_h = top.shape[2], out_w = top.shape[3]
    cdef Py_ssize_t task, n, c
    cdef int ph, pw, h, w, hstart, wstart, hend, wend, best_index
    cdef real best
    for task in prange(num * channels, nogil=True, schedule='static'):
        n = task // channels
        c = task % channels
        for ph in range(out_h):
            hstart = ph * stride_h - pad_h
            hend = min(hstart + kernel_h, height)
            hstart = max(hstart, 0)
            for pw in range(out_w):
                wstart = pw * stride_w - pad_w
                wend = min(wstart + kernel_w, width)
                wstart = max(wstart, 0)
                best = -FLT_MAX
                best_index = -1
                for h in range(hstart, hend):
                    for w in range(wstart, wend):
                        if bottom[n, c, h, w] > best:
                            best = bottom[n, c, h, w]
                            best_index = h * width + w
                top[n, c, ph, pw] = best
                mask[n, c, ph, pw] = <index_t>best_index


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
    if num * channels == 0 or plane == 0:
        return
    for task in prange(num * channels, nogil=True, schedule='static'):
        grad = &bottom_diff[0, 0, 0, 0] + task * plane
        source = &top_diff[0, 0, 0, 0] + task * outputs
        index = &mask[0, 0, 0, 0] + task * outputs
        memset(grad, 0, plane * sizeof(real))
        for q in range(outputs):
            if index[q] != none:
                grad[index[q]] += source[q]


def ave_pool_forward(const real[:, :, :, ::1] bottom, real[:, :, :, ::1] top,
                     int kernel_h, int kernel_w, int pad_h, int pad_w, int stride_h, int stride_w):
    cdef Py_ssize_t num = bottom.shape[0], channels = bottom.shape[1]
    cdef int height = bottom.shape[2], width = bottom.shape[3]
    cdef int out_h = top.shape[2], out_w = top.shape[3]
    cdef Py_ssize_t task, n, c
    cdef int ph, pw, h, w, hstart, wstart, hend, wend, pool_size
    cdef real total
    for task in prange(num * channels, nogil=True, schedule='static'):
        n = task // channels
        c = task % channels
        for ph in range(out_h):
            for pw in range(out_w):
                hstart = ph * stride_h - pad_h
                wstart = pw * stride_w - pad_w
                hend = min(hstart + kernel_h, height + pad_h)
                wend = min(wstart + kernel_w, width + pad_w)
                pool_size = (hend - hstart) * (wend - wstart)
                hstart = max(hstart, 0)
                wstart = max(wstart, 0)
                hend = min(hend, height)
                wend = min(wend, width)
                total = 0
                for h in range(hstart, hend):
                    for w in range(wstart, wend):
                        total = total + bottom[n, c, h, w]
                top[n, c, ph, pw] = total / pool_size


def ave_pool_backward(const real[:, :, :, ::1] top_diff, real[:, :, :, ::1] bottom_diff,
                      int kernel_h, int kernel_w, int pad_h, int pad_w, int stride_h, int stride_w):
    """Spread each top gradient evenly over its window; ``bottom_diff`` is overwritten."""
    cdef Py_ssize_t num = bottom_diff.shape[0], channels = bottom_diff.shape[1]
    cdef int height = bottom_diff.shape[2], width = bottom_diff.shape[3]
    cdef int out_h = top_diff.shape[2], out_w = top_diff.shape[3]
    cdef Py_ssize_t task, n, c
    cdef int ph, pw, h, w, hstart, wstart, hend, wend, pool_size
    cdef real share
    for task in prange(num * channels, nogil=True, schedule='static'):
        n = task // channels
        c = task % channels
        memset(&bottom_diff[n, c, 0, 0], 0, height * width * sizeof(real))
        for ph in range(out_h):
            for pw in range(out_w):
                hstart = ph * stride_h - pad_h
                wstart = pw * stride_w - pad_w
                hend = min(hstart + kernel_h, height + pad_h)
                wend = min(wstart + kernel_w, width + pad_w)
                pool_size = (hend - hstart) * (wend - wstart)
                hstart = max(hstart, 0)
                wstart = max(wstart, 0)
                hend = min(hend, height)
                wend = min(wend, width)
                share = top_diff[n, c, ph, pw] / pool_size
                for h in range(hstart, hend):
                    for w in range(wstart, wend):
                        bottom_diff[n, c, h, w] += share
