"""Batched im2col/col2im (Caffe's util/im2col.cpp, lowered over a whole partition of images at once).

The column buffer holds one row per (channel, kernel row, kernel column) and one column per
(image, output pixel): ``col[(c*kh + i)*kw + j, n*P + p]`` with P the output pixels per image. A
partition of N images is therefore one (C*kh*kw) x (N*P) matrix, and a convolution is one GEMM per
group over it (Caffe con Troll's lowering), instead of Caffe's one GEMM per image.

For each kernel column j the output columns whose input column falls inside the image form one
interval [ow_begin, ow_end), computed once; a lowered row is then zeros, a (strided) copy, zeros,
with no bounds test per pixel, and the copy is a plain ``memcpy`` for stride 1.
"""
from cython.parallel cimport prange
from libc.string cimport memcpy, memset

ctypedef fused real:
    float
    double


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    """ceil(a / b) for b > 0 and any sign of a."""
    if a <= 0:
        return -((-a) // b)
    return (a + b - 1) // b


cdef inline void _valid_columns(Py_ssize_t offset, Py_ssize_t width, Py_ssize_t stride,
                                Py_ssize_t out_w, Py_ssize_t *begin,
                                Py_ssize_t *end) noexcept nogil:
    """The output columns ow with 0 <= ow*stride + offset < width, as [begin, end)."""
    cdef Py_ssize_t lo = _ceil_div(-offset, stride)
    cdef Py_ssize_t hi = _ceil_div(width - offset, stride)
    if lo < 0:
        lo = 0
    if hi > out_w:
        hi = out_w
    if hi < lo:
        hi = lo
    begin[0] = lo
    end[0] = hi


cdef void _lower_plane(const real *plane, real *rows, Py_ssize_t row_stride, Py_ssize_t height,
                       Py_ssize_t width, int kernel_h, int kernel_w, int pad_h, int pad_w,
                       int stride_h, int stride_w, int dilation_h, int dilation_w, int out_h,
                       int out_w) noexcept nogil:
    """Write the kh*kw lowered rows of one (image, channel) plane; row r starts at
    ``rows + r*row_stride`` and holds out_h*out_w values."""
    cdef Py_ssize_t i, j, oh, ow, ih, begin, end, offset
    cdef real *dst
    cdef const real *src
    for i in range(kernel_h):
        for j in range(kernel_w):
            dst = rows + (i * kernel_w + j) * row_stride
            offset = j * dilation_w - pad_w
            _valid_columns(offset, width, stride_w, out_w, &begin, &end)
            for oh in range(out_h):
                ih = oh * stride_h - pad_h + i * dilation_h
                if ih < 0 or ih >= height or begin == end:
                    memset(dst, 0, out_w * sizeof(real))
                else:
                    if begin > 0:
                        memset(dst, 0, begin * sizeof(real))
                    src = plane + ih * width + begin * stride_w + offset
                    if stride_w == 1:
                        memcpy(dst + begin, src, (end - begin) * sizeof(real))
                    else:
                        for ow in range(end - begin):
                            dst[begin + ow] = src[ow * stride_w]
                    if end < out_w:
                        memset(dst + end, 0, (out_w - end) * sizeof(real))
                dst += out_w


cdef void _unlower_plane(const real *rows, Py_ssize_t row_stride, real *plane, Py_ssize_t height,
                         Py_ssize_t width, int kernel_h, int kernel_w, int pad_h, int pad_w,
                         int stride_h, int stride_w, int dilation_h, int dilation_w, int out_h,
                         int out_w) noexcept nogil:
    """Overwrite one plane with the sum of its kh*kw lowered rows scattered back (col2im)."""
    cdef Py_ssize_t i, j, oh, ow, ih, begin, end, offset
    cdef const real *src
    cdef real *dst
    memset(plane, 0, height * width * sizeof(real))
    for i in range(kernel_h):
        for j in range(kernel_w):
            src = rows + (i * kernel_w + j) * row_stride
            offset = j * dilation_w - pad_w
            _valid_columns(offset, width, stride_w, out_w, &begin, &end)
            for oh in range(out_h):
                ih = oh * stride_h - pad_h + i * dilation_h
                if ih >= 0 and ih < height:
                    dst = plane + ih * width + begin * stride_w + offset
                    for ow in range(end - begin):
                        dst[ow * stride_w] += src[begin + ow]
                src += out_w


def im2col(const real[:, :, :, ::1] images, real[:, ::1] col, int kernel_h, int kernel_w,
           int pad_h, int pad_w, int stride_h, int stride_w, int dilation_h, int dilation_w,
           int out_h, int out_w):
    """Lower ``images`` (N, C, H, W) into ``col`` (C*kh*kw, N*out_h*out_w); padding reads as 0."""
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Py_ssize_t height = images.shape[2], width = images.shape[3]
    cdef Py_ssize_t pixels = out_h * out_w, row_stride = col.shape[1]
    cdef Py_ssize_t task, n, c, taps = kernel_h * kernel_w
    if col.shape[0] != channels * taps or col.shape[1] != num * pixels:
        raise ValueError('im2col: column buffer has shape (%d, %d), expected (%d, %d)'
                         % (col.shape[0], col.shape[1], channels * taps, num * pixels))
    if num == 0 or channels == 0:
        return
    for task in prange(num * channels, nogil=True, schedule='static'):
        n = task // channels
        c = task % channels
        _lower_plane(&images[n, c, 0, 0], &col[c * taps, n * pixels], row_stride, height, width,
                     kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w,
                     out_h, out_w)


def col2im(const real[:, ::1] col, real[:, :, :, ::1] images, int kernel_h, int kernel_w,
           int pad_h, int pad_w, int stride_h, int stride_w, int dilation_h, int dilation_w,
           int out_h, int out_w):
    """Scatter-add ``col`` (C*kh*kw, N*out_h*out_w) back into ``images`` (N, C, H, W), which is
    overwritten (not accumulated into), as Caffe's col2im_cpu does."""
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Py_ssize_t height = images.shape[2], width = images.shape[3]
    cdef Py_ssize_t pixels = out_h * out_w, row_stride = col.shape[1]
    cdef Py_ssize_t task, n, c, taps = kernel_h * kernel_w
    if col.shape[0] != channels * taps or col.shape[1] != num * pixels:
        raise ValueError('col2im: column buffer has shape (%d, %d), expected (%d, %d)'
                         % (col.shape[0], col.shape[1], channels * taps, num * pixels))
    if num == 0 or channels == 0 or height == 0 or width == 0:
        return
    for task in prange(num * channels, nogil=True, schedule='static'):
        n = task // channels
        c = task % channels
        _unlower_plane(&col[c * taps, n * pixels], row_stride, &images[n, c, 0, 0], height, width,
                       kernel_h, kernel_w, pad_h, pad_w, stride_h, stride_w, dilation_h,
                       dilation_w, out_h, out_w)
