"""Batched im2col/col2im (Caffe's util/im2col.cpp, lowered over a whole partition of images at once).

The column buffer holds one row per (channel, kernel row, kernel column) and one column per
(image, output pixel): ``col[(c*kh + i)*kw + j, n*P + p]`` with P the output pixels per image. A
partition of N images is therefore one (C*kh*kw) x (N*P) matrix, and a convolution is one GEMM per
group over it (Caffe con Troll's lowering), instead of Caffe's one GEMM per image.
"""
from cython.parallel cimport prange
from libc.string cimport memset

ctypedef fused real:
    float
    double


def im2col(const real[:, :, :, ::1] images, real[:, ::1] col, int kernel_h, int kernel_w,
           int pad_h, int pad_w, int stride_h, int stride_w, int dilation_h, int dilation_w,
           int out_h, int out_w):
    """Lower ``images`` (N, C, H, W) into ``col`` (C*kh*kw, N*out_h*out_w); padding reads as 0."""
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Py_ssize_t height = images.shape[2], width = images.shape[3]
    cdef Py_ssize_t pixels = out_h * out_w
    cdef Py_ssize_t task, n, c, i, j, oh, ow, ih, iw, row, base
    if col.shape[0] != channels * kernel_h * kernel_w or col.shape[1] != num * pixels:
        raise ValueError('im2col: column buffer has shape (%d, %d), expected (%d, %d)'
                         % (col.shape[0], col.shape[1], channels * kernel_h * kernel_w, num * pixels))
    for task in prange(num * channels, nogil=True, schedule='static'):
        n = task // channels
        c = task % channels
        for i in range(kernel_h):
            for j in range(kernel_w):
                row = (c * kernel_h + i) * kernel_w + j
                base = n * pixels
                for oh in range(out_h):
                    ih = oh * stride_h - pad_h + i * dilation_h
                    if ih < 0 or ih >= height:
                        for ow in range(out_w):
                            col[row, base + oh * out_w + ow] = 0
                    else:
                        for ow in range(out_w):
                            iw = ow * stride_w - pad_w + j * dilation_w
                            if iw >= 0 and iw < width:
                                col[row, base + oh * out_w + ow] = images[n, c, ih, iw]
                            else:
                                col[row, base + oh * out_w + ow] = 0


def col2im(const real[:, ::1] col, real[:, :, :, ::1] images, int kernel_h, int kernel_w,
           int pad_h, int pad_w, int stride_h, int stride_w, int dilation_h, int dilation_w,
           int out_h, int out_w):
    """Scatter-add ``col`` (C*kh*kw, N*out_h*out_w) back into ``images`` (N, C, H, W), which is
    overwritten (not accumulated into), as Caffe's col2im_cpu does."""
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Py_ssize_t height = images.shape[2], width = images.shape[3]
    cdef Py_ssize_t pixels = out_h * out_w
    cdef Py_ssize_t task, n, c, i, j, oh, ow, ih, iw, row, base
    if col.shape[0] != channels * kernel_h * kernel_w or col.shape[1] != num * pixels:
        raise ValueError('col2im: column buffer has shape (%d, %d), expected (%d, %d)'
                         % (col.shape[0], col.shape[1], channels * kernel_h * kernel_w, num * pixels))
    for task in prange(num * channels, nogil=True, schedule='static'):
        n = task // channels
        c = task % channels
        memset(&images[n, c, 0, 0], 0, height * width * sizeof(real))
        for i in range(kernel_h):
            for j in range(kernel_w):
                row = (c * kernel_h + i) * kernel_w + j
                base = n * pixels
                for oh in range(out_h):
                    ih = oh * stride_h - pad_h + i * dilation_h
                    if ih >= 0 and ih < height:
                        for ow in range(out_w):
                            iw = ow * stride_w - pad_w + j * dilation_w
                            if iw >= 0 and iw < width:
                                images[n, c, ih, iw] += col[row, base + oh * out_w + ow]
