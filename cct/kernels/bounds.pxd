"""Argument checks at the Cython kernels' boundary: a window geometry or plane size that could make a
kernel index outside its arrays, or overflow its C int arithmetic, raises ValueError before any
kernel runs (the layers refuse such nets when they are built; this keeps direct callers safe too)."""

cdef extern from "limits.h":
    const int INT_MAX


cdef inline int check_window(str kernel, str axis, Py_ssize_t size, Py_ssize_t out,
                             Py_ssize_t window, Py_ssize_t stride, Py_ssize_t pad,
                             Py_ssize_t dilation) except -1:
    """One spatial axis of a sliding window over ``size`` values giving ``out`` windows: positive
    window, stride and dilation, no negative sizes, and every index within a C int."""
    if window < 1 or stride < 1 or dilation < 1 or pad < 0 or size < 0 or out < 0:
        raise ValueError('%s: bad %s geometry (kernel %d, stride %d, pad %d, dilation %d, '
                         'input %d, output %d)' % (kernel, axis, window, stride, pad, dilation,
                                                   size, out))
    if window > INT_MAX or dilation > INT_MAX or \
            size + 2 * pad + dilation * (window - 1) + 1 + stride > INT_MAX:
        raise ValueError('%s: the %s geometry (kernel %d, stride %d, pad %d, dilation %d, '
                         'input %d) reaches beyond a C int' % (kernel, axis, window, stride, pad,
                                                               dilation, size))
    return 0


cdef inline int check_conv_axis(str kernel, str axis, Py_ssize_t size, Py_ssize_t out,
                                Py_ssize_t window, Py_ssize_t stride, Py_ssize_t pad,
                                Py_ssize_t dilation) except -1:
    """A convolution axis: ``out`` must be floor((size + 2*pad - extent) / stride) + 1 exactly
    (0 when the extent exceeds the padded input), so that no window leaves the padded plane."""
    cdef Py_ssize_t extent = dilation * (window - 1) + 1, expected = 0
    check_window(kernel, axis, size, out, window, stride, pad, dilation)
    if size + 2 * pad >= extent:
        expected = (size + 2 * pad - extent) // stride + 1
    if out != expected:
        raise ValueError('%s: %d output %s values for input %d, kernel %d, stride %d, pad %d, '
                         'dilation %d (expected %d)' % (kernel, out, axis, size, window, stride,
                                                        pad, dilation, expected))
    return 0


cdef inline int check_pool_axis(str kernel, str axis, Py_ssize_t size, Py_ssize_t out,
                                Py_ssize_t window, Py_ssize_t stride, Py_ssize_t pad) except -1:
    """A pooling axis: at most Caffe's ceil(span / stride) + 1 windows (span = size + 2*pad -
    window), so no window starts a stride or more past the padded input. (Without padding Caffe
    keeps a last window that starts past the image; the kernels clip it to nothing.)"""
    cdef Py_ssize_t span = size + 2 * pad - window, most
    check_window(kernel, axis, size, out, window, stride, pad, 1)
    most = (span + stride - 1) // stride + 1 if span >= 0 else 1 - (-span) // stride
    if out > most:
        raise ValueError('%s: %d output %s values for input %d, kernel %d, stride %d, pad %d '
                         '(at most %d)' % (kernel, out, axis, size, window, stride, pad, most))
    return 0


cdef inline tuple dims(Py_ssize_t *shape, int ndim):
    """A memoryview's first ``ndim`` dimensions as a tuple, for shape checks and messages."""
    return tuple([shape[i] for i in range(ndim)])
