/* cct's GEMM: C = alpha * op(A) op(B) + beta * C on row-major matrices, tiled in local memory and
 * register-blocked, with a batch of independent products along the third launch dimension.
 *
 * A work-group of GEMM_THREADS_M x GEMM_THREADS_N work-items computes one GEMM_TILE_M x GEMM_TILE_N
 * tile of C; each work-item keeps a GEMM_BLOCK_M x GEMM_BLOCK_N block of it in registers, strided by
 * the thread counts so neighbouring work-items touch neighbouring columns. The defaults (8 x 8 blocks
 * of a 64 x 64 tile) ran 1.5-3x faster on PoCL than 4 x 4 blocks of 32 x 32 and than 32 x 64 tiles,
 * LeNet-sized products included; a build may override them (-DGEMM_BLOCK_M=...), and the runtime
 * reads the defaults from this file to size its launches. op(A) is M x K, op(B) is K x N; trans_a/trans_b
 * say A or B is stored transposed (BLAS's convention with row-major leading dimensions). Product p of
 * the batch reads A, B and C at their offsets plus p times their batch strides: the convolution runs one
 * launch per group over a whole partition of the batch this way. beta == 0 never reads C (BLAS's rule,
 * so stale NaNs in C do not survive).
 */
#ifndef GEMM_BLOCK_M
#define GEMM_BLOCK_M 8
#endif
#ifndef GEMM_BLOCK_N
#define GEMM_BLOCK_N 8
#endif
#ifndef GEMM_THREADS_M
#define GEMM_THREADS_M 8
#endif
#ifndef GEMM_THREADS_N
#define GEMM_THREADS_N 8
#endif
#define GEMM_TILE_M (GEMM_BLOCK_M * GEMM_THREADS_M)
#define GEMM_TILE_N (GEMM_BLOCK_N * GEMM_THREADS_N)
#define GEMM_THREADS (GEMM_THREADS_M * GEMM_THREADS_N)
#define GEMM_DEPTH 16

KERNEL gemm(const int M, const int N, const int K, const REAL alpha,
            GLOBAL const REAL *A, const int offset_a, const int lda, const int trans_a,
            const int batch_stride_a,
            GLOBAL const REAL *B, const int offset_b, const int ldb, const int trans_b,
            const int batch_stride_b,
            const REAL beta, GLOBAL REAL *C, const int offset_c, const int ldc,
            const int batch_stride_c)
{
    LOCAL REAL tile_a[GEMM_DEPTH][GEMM_TILE_M + 1];
    LOCAL REAL tile_b[GEMM_DEPTH][GEMM_TILE_N + 1];
    const int tx = LOCAL_ID(0), ty = LOCAL_ID(1);
    const int n0 = GROUP_ID(0) * GEMM_TILE_N, m0 = GROUP_ID(1) * GEMM_TILE_M;
    const int product = GROUP_ID(2);
    const int thread = ty * GEMM_THREADS_N + tx;
    GLOBAL const REAL *a = A + offset_a + product * batch_stride_a;
    GLOBAL const REAL *b = B + offset_b + product * batch_stride_b;
    GLOBAL REAL *c = C + offset_c + product * batch_stride_c;
    REAL acc[GEMM_BLOCK_M][GEMM_BLOCK_N];
    for (int i = 0; i < GEMM_BLOCK_M; ++i)
        for (int j = 0; j < GEMM_BLOCK_N; ++j)
            acc[i][j] = 0;
    for (int k0 = 0; k0 < K; k0 += GEMM_DEPTH) {
        /* The fastest-moving index follows memory: along k for A, along n for B, unless stored
         * transposed. */
        for (int l = thread; l < GEMM_TILE_M * GEMM_DEPTH; l += GEMM_THREADS) {
            const int ka = trans_a ? l / GEMM_TILE_M : l % GEMM_DEPTH;
            const int ma = trans_a ? l % GEMM_TILE_M : l / GEMM_DEPTH;
            REAL value = 0;
            if (m0 + ma < M && k0 + ka < K)
                value = trans_a ? a[(k0 + ka) * lda + m0 + ma] : a[(m0 + ma) * lda + k0 + ka];
            tile_a[ka][ma] = value;
        }
        for (int l = thread; l < GEMM_TILE_N * GEMM_DEPTH; l += GEMM_THREADS) {
            const int kb = trans_b ? l % GEMM_DEPTH : l / GEMM_TILE_N;
            const int nb = trans_b ? l / GEMM_DEPTH : l % GEMM_TILE_N;
            REAL value = 0;
            if (n0 + nb < N && k0 + kb < K)
                value = trans_b ? b[(n0 + nb) * ldb + k0 + kb] : b[(k0 + kb) * ldb + n0 + nb];
            tile_b[kb][nb] = value;
        }
        LOCAL_BARRIER;
        for (int k = 0; k < GEMM_DEPTH; ++k) {
            REAL row[GEMM_BLOCK_M], col[GEMM_BLOCK_N];
            for (int i = 0; i < GEMM_BLOCK_M; ++i)
                row[i] = tile_a[k][ty + i * GEMM_THREADS_M];
            for (int j = 0; j < GEMM_BLOCK_N; ++j)
                col[j] = tile_b[k][tx + j * GEMM_THREADS_N];
            for (int i = 0; i < GEMM_BLOCK_M; ++i)
                for (int j = 0; j < GEMM_BLOCK_N; ++j)
                    acc[i][j] += row[i] * col[j];
        }
        LOCAL_BARRIER;
    }
    for (int i = 0; i < GEMM_BLOCK_M; ++i) {
        const int m = m0 + ty + i * GEMM_THREADS_M;
        if (m >= M)
            continue;
        for (int j = 0; j < GEMM_BLOCK_N; ++j) {
            const int n = n0 + tx + j * GEMM_THREADS_N;
            if (n < N)
                c[m * ldc + n] = beta == 0 ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c[m * ldc + n];
        }
    }
}

/* The same product without local memory or barriers, for OpenCL devices that are CPUs (PoCL): each
 * work-item accumulates a DIRECT_BLOCK_M x DIRECT_BLOCK_N block of C in registers straight from A and
 * B. A CPU emulates local memory and splits a work-group's loop over work-items at every barrier,
 * keeping the accumulators in memory between the pieces; without them this ran 2-5x faster on PoCL
 * (512^3: 7 vs 3 GFLOP/s; LeNet's conv1 product 5 vs 1). GPUs keep the tiled kernel above; the tests
 * run both on every device. Same arguments and launch shape (work-items along n, m, product). */
#define DIRECT_BLOCK_M 4
#define DIRECT_BLOCK_N 8

KERNEL gemm_direct(const int M, const int N, const int K, const REAL alpha,
                   GLOBAL const REAL *A, const int offset_a, const int lda, const int trans_a,
                   const int batch_stride_a,
                   GLOBAL const REAL *B, const int offset_b, const int ldb, const int trans_b,
                   const int batch_stride_b,
                   const REAL beta, GLOBAL REAL *C, const int offset_c, const int ldc,
                   const int batch_stride_c)
{
    const int n0 = GLOBAL_ID(0) * DIRECT_BLOCK_N, m0 = GLOBAL_ID(1) * DIRECT_BLOCK_M;
    const int product = GLOBAL_ID(2);
    if (m0 >= M || n0 >= N)
        return;
    GLOBAL const REAL *a = A + offset_a + product * batch_stride_a;
    GLOBAL const REAL *b = B + offset_b + product * batch_stride_b;
    GLOBAL REAL *c = C + offset_c + product * batch_stride_c;
    /* Element (m, k) of op(A) is a[m * a_m + k * a_k]; (k, n) of op(B) is b[k * b_k + n * b_n]. */
    const int a_m = trans_a ? 1 : lda, a_k = trans_a ? lda : 1;
    const int b_k = trans_b ? 1 : ldb, b_n = trans_b ? ldb : 1;
    const int rows = min(DIRECT_BLOCK_M, M - m0), cols = min(DIRECT_BLOCK_N, N - n0);
    REAL acc[DIRECT_BLOCK_M][DIRECT_BLOCK_N];
    for (int i = 0; i < DIRECT_BLOCK_M; ++i)
        for (int j = 0; j < DIRECT_BLOCK_N; ++j)
            acc[i][j] = 0;
    if (rows == DIRECT_BLOCK_M && cols == DIRECT_BLOCK_N) {
        for (int k = 0; k < K; ++k) {
            REAL col[DIRECT_BLOCK_N];
            for (int j = 0; j < DIRECT_BLOCK_N; ++j)
                col[j] = b[k * b_k + (n0 + j) * b_n];
            for (int i = 0; i < DIRECT_BLOCK_M; ++i) {
                const REAL value = a[(m0 + i) * a_m + k * a_k];
                for (int j = 0; j < DIRECT_BLOCK_N; ++j)
                    acc[i][j] += value * col[j];
            }
        }
    } else {
        for (int k = 0; k < K; ++k)
            for (int i = 0; i < rows; ++i) {
                const REAL value = a[(m0 + i) * a_m + k * a_k];
                for (int j = 0; j < cols; ++j)
                    acc[i][j] += value * b[k * b_k + (n0 + j) * b_n];
            }
    }
    for (int i = 0; i < rows; ++i)
        for (int j = 0; j < cols; ++j) {
            GLOBAL REAL *out = c + (m0 + i) * ldc + n0 + j;
            *out = beta == 0 ? alpha * acc[i][j] : alpha * acc[i][j] + beta * *out;
        }
}
