# Row-major GEMM on raw pointers, callable from nogil code: CBLAS of the OpenBLAS that the
# scipy-openblas32 package ships (the build numpy and scipy wheels bundle), linked by setup.py and
# preloaded by cct/kernels/__init__.py. It is cct's own copy, kept at one thread: cct calls it from
# its OpenMP threads, one single-threaded GEMM per thread, instead of letting BLAS split each GEMM.

cdef extern from "cblas.h" nogil:
    ctypedef enum CBLAS_ORDER:
        CblasRowMajor
    ctypedef enum CBLAS_TRANSPOSE:
        CblasNoTrans
        CblasTrans
    void scipy_cblas_sgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE trans_a, CBLAS_TRANSPOSE trans_b,
                           int m, int n, int k, float alpha, const float *a, int lda,
                           const float *b, int ldb, float beta, float *c, int ldc)
    void scipy_cblas_dgemm(CBLAS_ORDER order, CBLAS_TRANSPOSE trans_a, CBLAS_TRANSPOSE trans_b,
                           int m, int n, int k, double alpha, const double *a, int lda,
                           const double *b, int ldb, double beta, double *c, int ldc)
    void scipy_openblas_set_num_threads(int threads)

ctypedef fused real:
    float
    double


cdef inline void gemm_rm(bint trans_a, bint trans_b, int m, int n, int k, real alpha,
                         const real *a, int lda, const real *b, int ldb, real beta, real *c,
                         int ldc) noexcept nogil:
    """C (m x n, row stride ldc) = alpha * op(A) @ op(B) + beta * C, all row-major; op(A) is m x k."""
    cdef CBLAS_TRANSPOSE ta = CblasTrans if trans_a else CblasNoTrans
    cdef CBLAS_TRANSPOSE tb = CblasTrans if trans_b else CblasNoTrans
    if m <= 0 or n <= 0:
        return
    if real is float:
        scipy_cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    else:
        scipy_cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
