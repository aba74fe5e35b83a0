"""STOCHASTIC pooling over (N, C, H, W) planes: the StoPool* kernels of Caffe's pooling_layer.cu, on CPU.

Windows are never padded (Caffe allows no padding for STOCHASTIC): they start at ph*stride and are
clipped to the image. TRAIN draws one index per window with probability proportional to the
activation, by Caffe's inverse-CDF scan: threshold = u * sum, pick the first element whose running
sum reaches it. TEST outputs sum(x^2) / sum(x), or 0 when the sum is not positive. Planes are
independent, so they are split across cores.
"""
from cython.parallel cimport prange
from libc.string cimport memset

from cct.kernels.bounds cimport check_pool_axis, dims

ctypedef fused real:
    float
    double


cdef int _check(str kernel, tuple bottom, tuple top, int kernel_h, int kernel_w, int stride_h,
                int stride_w) except -1:
    """Pooled and input planes agree in number, and the (unpadded) windows stay within reach."""
    if bottom[:2] != top[:2]:
        raise ValueError('%s: the pooled blob has %d x %d planes, the input %d x %d'
                         % (kernel, top[0], top[1], bottom[0], bottom[1]))
    check_pool_axis(kernel, 'height', bottom[2], top[2], kernel_h, stride_h, 0)
    check_pool_axis(kernel, 'width', bottom[3], top[3], kernel_w, stride_w, 0)
    return 0


def stochastic_pool_forward_train(const real[:, :, :, ::1] bottom, real[:, :, :, ::1] top,
                                  int[:, :, :, ::1] mask, const real[:, :, :, ::1] uniforms,
                                  int kernel_h, int kernel_w, int stride_h, int stride_w):
    """Sample each window: ``top`` gets the chosen activation, ``mask`` its flat index in the plane.

    ``uniforms`` (the shape of ``top``) holds draws in [0, 1); 1 - u in (0, 1] is the quantile, as
    cuRAND's uniforms are, so a zero activation is never chosen from a window with a positive sum.
    """
    cdef Py_ssize_t num = bottom.shape[0], channels = bottom.shape[1]
    cdef int height = bottom.shape[2], width = bottom.shape[3]
    cdef int out_h = top.shape[2], out_w = top.shape[3]
    cdef Py_ssize_t task, n, c
    cdef int ph, pw, h, w, hstart, wstart, hend, wend, chosen, found
    cdef real total, running, threshold
    _check('stochastic_pool_forward_train', dims(bottom.shape, 4), dims(top.shape, 4),
           kernel_h, kernel_w, stride_h, stride_w)
    if dims(mask.shape, 4) != dims(top.shape, 4) or \
            dims(uniforms.shape, 4) != dims(top.shape, 4):
        raise ValueError('stochastic_pool_forward_train: mask %s and uniforms %s must have the '
                         'pooled shape %s' % (dims(mask.shape, 4), dims(uniforms.shape, 4),
                                              dims(top.shape, 4)))
    for task in prange(num * channels, nogil=True, schedule='static'):
        n = task // channels
        c = task % channels
        for ph in range(out_h):
            hstart = ph * stride_h
            hend = min(hstart + kernel_h, height)
            for pw in range(out_w):
                wstart = pw * stride_w
                wend = min(wstart + kernel_w, width)
                total = 0
                for h in range(hstart, hend):
                    for w in range(wstart, wend):
                        total = total + bottom[n, c, h, w]
                threshold = (1 - uniforms[n, c, ph, pw]) * total
                # Caffe leaves the output unset when no running sum reaches the threshold (only
                # possible with negative inputs); cct takes the window's last element instead.
                chosen = (hend - 1) * width + wend - 1 if hend > hstart and wend > wstart else -1
                running = 0
                found = 0
                for h in range(hstart, hend):
                    if found:
                        break
                    for w in range(wstart, wend):
                        running = running + bottom[n, c, h, w]
                        if running >= threshold:
                            chosen = h * width + w
                            found = 1
                            break
                mask[n, c, ph, pw] = chosen
                if chosen >= 0:
                    top[n, c, ph, pw] = bottom[n, c, chosen // width, chosen % width]
                else:
                    top[n, c, ph, pw] = 0


def stochastic_pool_forward_test(const real[:, :, :, ::1] bottom, real[:, :, :, ::1] top,
                                 int kernel_h, int kernel_w, int stride_h, int stride_w):
    """Each window's probability-weighted average sum(x^2) / sum(x) (0 if sum(x) <= 0)."""
    cdef Py_ssize_t num = bottom.shape[0], channels = bottom.shape[1]
    cdef int height = bottom.shape[2], width = bottom.shape[3]
    cdef int out_h = top.shape[2], out_w = top.shape[3]
    cdef Py_ssize_t task, n, c
    cdef int ph, pw, h, w, hstart, wstart, hend, wend
    cdef real total, squares, value
    _check('stochastic_pool_forward_test', dims(bottom.shape, 4), dims(top.shape, 4),
           kernel_h, kernel_w, stride_h, stride_w)
    for task in prange(num * channels, nogil=True, schedule='static'):
        n = task // channels
        c = task % channels
        for ph in range(out_h):
            hstart = ph * stride_h
            hend = min(hstart + kernel_h, height)
            for pw in range(out_w):
                wstart = pw * stride_w
                wend = min(wstart + kernel_w, width)
                total = 0
                squares = 0
                for h in range(hstart, hend):
                    for w in range(wstart, wend):
                        value = bottom[n, c, h, w]
                        total = total + value
                        squares = squares + value * value
                top[n, c, ph, pw] = squares / total if total > 0 else 0


def stochastic_pool_backward_test(const real[:, :, :, ::1] bottom, const real[:, :, :, ::1] top,
                                  const real[:, :, :, ::1] top_diff, real[:, :, :, ::1] bottom_diff,
                                  int kernel_h, int kernel_w, int stride_h, int stride_w):
    """Gradient of the TEST output y = sum(x^2)/S: dy/dx = (2x - y)/S for S = sum(x) > 0.

    ``bottom_diff`` is overwritten.
    """
    cdef Py_ssize_t num = bottom.shape[0], channels = bottom.shape[1]
    cdef int height = bottom.shape[2], width = bottom.shape[3]
    cdef int out_h = top.shape[2], out_w = top.shape[3]
    cdef Py_ssize_t task, n, c
    cdef int ph, pw, h, w, hstart, wstart, hend, wend
    cdef real total, output, scale
    _check('stochastic_pool_backward_test', dims(bottom.shape, 4), dims(top.shape, 4),
           kernel_h, kernel_w, stride_h, stride_w)
    if dims(top_diff.shape, 4) != dims(top.shape, 4) or \
            dims(bottom_diff.shape, 4) != dims(bottom.shape, 4):
        raise ValueError('stochastic_pool_backward_test: the gradients must have the shapes of '
                         'their blobs')
    for task in prange(num * channels, nogil=True, schedule='static'):
        n = task // channels
        c = task % channels
        memset(&bottom_diff[n, c, 0, 0], 0, height * width * sizeof(real))
        for ph in range(out_h):
            hstart = ph * stride_h
            hend = min(hstart + kernel_h, height)
            for pw in range(out_w):
                wstart = pw * stride_w
                wend = min(wstart + kernel_w, width)
                total = 0
                for h in range(hstart, hend):
                    for w in range(wstart, wend):
                        total = total + bottom[n, c, h, w]
                if total <= 0:
                    continue
                output = top[n, c, ph, pw]
                scale = top_diff[n, c, ph, pw] / total
                for h in range(hstart, hend):
                    for w in range(wstart, wend):
                        bottom_diff[n, c, h, w] += scale * (2 * bottom[n, c, h, w] - output)
