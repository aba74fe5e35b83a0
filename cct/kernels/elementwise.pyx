"""Element-wise passes of the cheap layers (ReLU, Dropout, Eltwise, Split) and of the net (zeroing
the parameter gradients; the CPU device's copy, scale and axpby) as one multi-core loop each, with
Caffe's arithmetic (relu_layer.cpp, dropout_layer.cpp).

numpy would make temporaries (a boolean mask, a product) and run on one core; these read their
inputs and write their output once, and give the same bits as the numpy expressions they replace.
"""
from cython.parallel cimport prange
from libc.string cimport memmove, memset
from openmp cimport omp_get_max_threads

from cct.kernels.parallel cimport PARALLEL_MIN

#: Below this many values a pass runs on one thread (cct/kernels/parallel.pxd).
parallel_min = PARALLEL_MIN

ctypedef fused real:
    float
    double


def relu_forward(const real[::1] bottom, real[::1] top, double negative_slope):
    """``top = max(x, 0) + negative_slope * min(x, 0)`` (in place allowed)."""
    cdef Py_ssize_t i, count = bottom.shape[0]
    cdef real slope = <real>negative_slope, x, zero = 0
    _check(count, top.shape[0])
    if slope == 0:
        for i in prange(count, nogil=True, schedule='static', use_threads_if=count >= PARALLEL_MIN):
            x = bottom[i]
            # max(x, 0) as numpy's maximum: a NaN input stays NaN.
            top[i] = x if (x > zero or x != x) else zero
    else:
        for i in prange(count, nogil=True, schedule='static', use_threads_if=count >= PARALLEL_MIN):
            x = bottom[i]
            if x != x:
                top[i] = x
            elif x > zero:
                top[i] = x + slope * zero
            else:
                top[i] = zero + slope * x


def relu_backward(const real[::1] bottom, const real[::1] top_diff, real[::1] bottom_diff,
                  double negative_slope):
    """``dx = dy * (x > 0 ? 1 : negative_slope)``: the gradient at exactly 0 is the slope's."""
    cdef Py_ssize_t i, count = bottom.shape[0]
    cdef real slope = <real>negative_slope, zero = 0, one = 1
    _check(count, top_diff.shape[0])
    _check(count, bottom_diff.shape[0])
    for i in prange(count, nogil=True, schedule='static', use_threads_if=count >= PARALLEL_MIN):
        bottom_diff[i] = top_diff[i] * (one if bottom[i] > zero else slope)


def masked_scale(const real[::1] source, const unsigned char[::1] mask, real[::1] out,
                 double scale):
    """``out = source * mask * scale`` (Dropout's forward and backward; in place allowed)."""
    cdef Py_ssize_t i, count = source.shape[0]
    cdef real factor = <real>scale
    _check(count, mask.shape[0])
    _check(count, out.shape[0])
    for i in prange(count, nogil=True, schedule='static', use_threads_if=count >= PARALLEL_MIN):
        out[i] = (source[i] * <real>mask[i]) * factor


cdef inline Py_ssize_t _blocks(Py_ssize_t count) noexcept:
    """How many blocks zero and copy split ``count`` values into: one per core, each of at least
    65536 values (at least one block)."""
    return max(1, min(omp_get_max_threads(), count // 65536))


def zero(real[::1] array):
    """``array[...] = 0``, a block per core."""
    cdef Py_ssize_t count = array.shape[0], blocks, block, first, last
    if count == 0:
        return
    blocks = _blocks(count)
    for block in prange(blocks, nogil=True, schedule='static', use_threads_if=blocks > 1):
        first = count * block // blocks
        last = count * (block + 1) // blocks
        memset(&array[first], 0, (last - first) * sizeof(real))


def copy(const real[::1] source, real[::1] out):
    """``out[...] = source``, a block per core."""
    cdef Py_ssize_t count = source.shape[0], blocks, block, first, last
    _check(count, out.shape[0])
    if count == 0:
        return
    blocks = _blocks(count)
    for block in prange(blocks, nogil=True, schedule='static', use_threads_if=blocks > 1):
        first = count * block // blocks
        last = count * (block + 1) // blocks
        memmove(&out[first], &source[first], (last - first) * sizeof(real))


def add(const real[::1] a, const real[::1] b, real[::1] out):
    """``out = a + b`` (in place allowed): Eltwise SUM's and Split's backward's one pass."""
    cdef Py_ssize_t i, count = a.shape[0]
    _check(count, b.shape[0])
    _check(count, out.shape[0])
    for i in prange(count, nogil=True, schedule='static', use_threads_if=count >= PARALLEL_MIN):
        out[i] = a[i] + b[i]


def scale(const real[::1] x, double alpha, real[::1] out):
    """``out = x * alpha`` (numpy's ``np.multiply(x, alpha, out=out)``; in place allowed)."""
    cdef Py_ssize_t i, count = x.shape[0]
    cdef real a = <real>alpha
    _check(count, out.shape[0])
    for i in prange(count, nogil=True, schedule='static', use_threads_if=count >= PARALLEL_MIN):
        out[i] = x[i] * a


def axpby(double alpha, const real[::1] x, double beta, real[::1] y):
    """``y = alpha * x + beta * y`` with the CPU device's numpy steps per element: ``y *= beta``
    unless beta is 1 (``y = x * alpha`` when it is 0), then ``y += x``, ``y -= x`` or
    ``y += x * alpha`` for alpha 1, -1 or other."""
    cdef Py_ssize_t i, count = x.shape[0]
    cdef real a = <real>alpha, b = <real>beta, t
    _check(count, y.shape[0])
    if beta == 0:
        for i in prange(count, nogil=True, schedule='static', use_threads_if=count >= PARALLEL_MIN):
            y[i] = x[i] * a
    elif beta == 1 and alpha == 1:
        for i in prange(count, nogil=True, schedule='static', use_threads_if=count >= PARALLEL_MIN):
            y[i] = y[i] + x[i]
    elif beta == 1 and alpha == -1:
        for i in prange(count, nogil=True, schedule='static', use_threads_if=count >= PARALLEL_MIN):
            y[i] = y[i] - x[i]
    elif beta == 1:
        for i in prange(count, nogil=True, schedule='static', use_threads_if=count >= PARALLEL_MIN):
            t = x[i] * a
            y[i] = y[i] + t
    elif alpha == 1:
        for i in prange(count, nogil=True, schedule='static', use_threads_if=count >= PARALLEL_MIN):
            t = y[i] * b
            y[i] = t + x[i]
    elif alpha == -1:
        for i in prange(count, nogil=True, schedule='static', use_threads_if=count >= PARALLEL_MIN):
            t = y[i] * b
            y[i] = t - x[i]
    else:
        for i in prange(count, nogil=True, schedule='static', use_threads_if=count >= PARALLEL_MIN):
            t = y[i] * b
            y[i] = t + x[i] * a


cdef inline int _check(Py_ssize_t expected, Py_ssize_t got) except -1:
    if expected != got:
        raise ValueError('element-wise kernel: arrays differ in length (%d and %d)'
                         % (expected, got))
    return 0
