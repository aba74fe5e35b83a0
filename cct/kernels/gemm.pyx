"""The GEMM primitive layers call (InnerProduct, and anyone else's dense products): the output is
cut into one block of rows or columns per core and each block is one single-threaded BLAS call on
its own OpenMP thread, the same thread layout the convolution kernels use (cct.kernels.lowering).

Every element of the output is the same dot product over k whichever block computes it, so the
result does not depend on the number of threads.
"""
from cython.parallel cimport prange
from openmp cimport omp_get_max_threads

import numpy as np

from cct.kernels.blas cimport gemm_rm, real, scipy_openblas_set_num_threads

scipy_openblas_set_num_threads(1)  # cct's own BLAS copy; threads come from OpenMP (cct.kernels)

# Below this many multiply-adds one thread does the product (a parallel region costs more: on a
# 2-core Zen-4 EPYC, 320k multiply-adds took 8-11 us on one thread against 18-22 us on two, 1M
# 23-24 against 30; LeNet's ip2 products are 320k).
cdef enum:
    SERIAL_MACS = 1 << 21


cdef inline Py_ssize_t _row_major(object array, bint *transposed, Py_ssize_t *ld):
    """How BLAS sees ``array``: row-major with leading dimension ``ld``, or (``transposed``) the
    row-major transpose of a column-major array. Returns 0, or -1 when it is neither."""
    strides, itemsize = array.strides, array.itemsize
    rows, cols = array.shape
    if cols <= 1 or strides[1] == itemsize:
        if rows > 1 and (strides[0] % itemsize or strides[0] // itemsize < max(cols, 1)):
            return -1
        transposed[0] = False
        ld[0] = strides[0] // itemsize if rows > 1 else max(cols, 1)
        return 0
    if rows <= 1 or strides[0] == itemsize:
        if strides[1] % itemsize or strides[1] // itemsize < max(rows, 1):
            return -1
        transposed[0] = True
        ld[0] = strides[1] // itemsize
        return 0
    return -1


def gemm(a, b, out, bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0):
    """``out = alpha * op(a) @ op(b) + beta * out``, split across cores.

    ``beta=0`` overwrites ``out`` (its old values are never read, NaNs included); other betas
    accumulate, which Caffe's parameter gradients rely on (they sum over iter_size passes and
    shared layers). ``a``, ``b`` and ``out`` are 2-D arrays of one float type; operands that are
    neither row- nor column-major are copied first.
    """
    cdef bint ta, tb, tc
    cdef Py_ssize_t lda, ldb, ldc
    if a.ndim != 2 or b.ndim != 2 or out.ndim != 2:
        raise ValueError('gemm: operands must be 2-D, got %d-D, %d-D and %d-D'
                         % (a.ndim, b.ndim, out.ndim))
    if not (a.dtype == b.dtype == out.dtype) or out.dtype not in (np.float32, np.float64):
        raise TypeError('gemm: operands must all be float32 or all float64, got %s, %s and %s'
                        % (a.dtype, b.dtype, out.dtype))
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if kb != k or out.shape != (m, n):
        raise ValueError('gemm: op(a) is %dx%d, op(b) is %dx%d, out is %s'
                         % (m, k, kb, n, 'x'.join(str(d) for d in out.shape)))
    if m == 0 or n == 0:
        return out
    if k == 0:
        if beta == 0:
            out[...] = 0
        else:
            out *= out.dtype.type(beta)
        return out
    if _row_major(a, &ta, &lda) < 0:
        a = np.ascontiguousarray(a)
        ta, lda = False, a.shape[1]
    if _row_major(b, &tb, &ldb) < 0:
        b = np.ascontiguousarray(b)
        tb, ldb = False, b.shape[1]
    target = out
    if _row_major(out, &tc, &ldc) < 0 or tc:
        target = np.ascontiguousarray(out) if beta != 0 else np.empty(out.shape, out.dtype)
        ldc = out.shape[1]
    if out.dtype == np.float32:
        _parallel_gemm[float](trans_a != ta, trans_b != tb, m, n, k, alpha, a, lda, b, ldb, beta,
                              target, ldc)
    else:
        _parallel_gemm[double](trans_a != ta, trans_b != tb, m, n, k, alpha, a, lda, b, ldb,
                               beta, target, ldc)
    if target is not out:
        out[...] = target
    return out


cdef void _parallel_gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                         double alpha, const real[:, :] a, Py_ssize_t lda, const real[:, :] b,
                         Py_ssize_t ldb, double beta, real[:, :] c, Py_ssize_t ldc) except *:
    cdef const real *pa = &a[0, 0]
    cdef const real *pb = &b[0, 0]
    cdef real *pc = &c[0, 0]
    cdef Py_ssize_t threads = omp_get_max_threads(), blocks, t, first, last, size
    cdef bint by_rows = m >= n
    cdef real ra = <real>alpha, rb = <real>beta
    size = m if by_rows else n
    blocks = min(threads, size)
    if m * n * k < SERIAL_MACS or blocks <= 1:
        with nogil:
            gemm_rm(trans_a, trans_b, <int>m, <int>n, <int>k, ra, pa, <int>lda, pb, <int>ldb, rb,
                    pc, <int>ldc)
        return
    for t in prange(blocks, nogil=True, schedule='static', num_threads=blocks):
        first = size * t // blocks
        last = size * (t + 1) // blocks
        if by_rows:
            # Rows first..last of op(A): rows of A, or columns of A when it is transposed.
            gemm_rm(trans_a, trans_b, <int>(last - first), <int>n, <int>k, ra,
                    pa + (first if trans_a else first * lda), <int>lda, pb, <int>ldb, rb,
                    pc + first * ldc, <int>ldc)
        else:
            gemm_rm(trans_a, trans_b, <int>m, <int>(last - first), <int>k, ra, pa, <int>lda,
                    pb + (first * ldb if trans_b else first), <int>ldb, rb, pc + first, <int>ldc)
