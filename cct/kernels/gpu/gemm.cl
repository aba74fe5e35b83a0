/* cct's GEMM: C = alpha * op(A) op(B) + beta * C on row-major matrices, tiled in local memory and
 * register-blocked, with a batch of independent products along the third launch dimension.
 *
 * A work-group of GEMM_THREADS x GEMM_THREADS work-items computes one GEMM_TILE x GEMM_TILE tile of
 * C; each work-item keeps a GEMM_BLOCK x GEMM_BLOCK block of it in registers, strided by GEMM_THREADS
 * so neighbouring work-items touch neighbouring columns. (8 x 8 blocks of a 64 x 64 tile ran 1.5-3x
 * faster on PoCL than 4 x 4 blocks of 32 x 32, LeNet-sized products included.) op(A) is M x K, op(B) is K x N; trans_a/trans_b
 * say A or B is stored transposed (BLAS's convention with row-major leading dimensions). Product p of
 * the batch reads A, B and C at their offsets plus p times their batch strides: the convolution runs one
 * launch per group over a whole partition of the batch this way. beta == 0 never reads C (BLAS's rule,
 * so stale NaNs in C do not survive).
 */
#define GEMM_BLOCK 8
#define GEMM_THREADS 8
#define GEMM_TILE (GEMM_BLOCK * GEMM_THREADS)
#define GEMM_DEPTH 16

KERNEL gemm(const int M, const int N, const int K, const REAL alpha,
            GLOBAL const REAL *A, const int offset_a, const int lda, const int trans_a,
            const int batch_stride_a,
            GLOBAL const REAL *B, const int offset_b, const int ldb, const int trans_b,
            const int batch_stride_b,
            const REAL beta, GLOBAL REAL *C, const int offset_c, const int ldc,
            const int batch_stride_c)
{
    LOCAL REAL tile_a[GEMM_DEPTH][GEMM_TILE + 1];
    LOCAL REAL tile_b[GEMM_DEPTH][GEMM_TILE + 1];
    const int tx = LOCAL_ID(0), ty = LOCAL_ID(1);
    const int n0 = GROUP_ID(0) * GEMM_TILE, m0 = GROUP_ID(1) * GEMM_TILE;
    const int product = GROUP_ID(2);
    const int thread = ty * GEMM_THREADS + tx;
    GLOBAL const REAL *a = A + offset_a + product * batch_stride_a;
    GLOBAL const REAL *b = B + offset_b + product * batch_stride_b;
    GLOBAL REAL *c = C + offset_c + product * batch_stride_c;
    REAL acc[GEMM_BLOCK][GEMM_BLOCK];
    for (int i = 0; i < GEMM_BLOCK; ++i)
        for (int j = 0; j < GEMM_BLOCK; ++j)
            acc[i][j] = 0;
    for (int k0 = 0; k0 < K; k0 += GEMM_DEPTH) {
        for (int l = thread; l < GEMM_TILE * GEMM_DEPTH; l += GEMM_THREADS * GEMM_THREADS) {
            /* The fastest-moving index follows memory: along k for A, along n for B, unless stored
             * transposed. */
            const int ka = trans_a ? l / GEMM_TILE : l % GEMM_DEPTH;
            const int ma = trans_a ? l % GEMM_TILE : l / GEMM_DEPTH;
            REAL value = 0;
            if (m0 + ma < M && k0 + ka < K)
                value = trans_a ? a[(k0 + ka) * lda + m0 + ma] : a[(m0 + ma) * lda + k0 + ka];
            tile_a[ka][ma] = value;
            const int kb = trans_b ? l % GEMM_DEPTH : l / GEMM_TILE;
            const int nb = trans_b ? l / GEMM_DEPTH : l % GEMM_TILE;
            value = 0;
            if (n0 + nb < N && k0 + kb < K)
                value = trans_b ? b[(n0 + nb) * ldb + k0 + kb] : b[(k0 + kb) * ldb + n0 + nb];
            tile_b[kb][nb] = value;
        }
        LOCAL_BARRIER;
        for (int k = 0; k < GEMM_DEPTH; ++k) {
            REAL row[GEMM_BLOCK], col[GEMM_BLOCK];
            for (int i = 0; i < GEMM_BLOCK; ++i)
                row[i] = tile_a[k][ty + i * GEMM_THREADS];
            for (int j = 0; j < GEMM_BLOCK; ++j)
                col[j] = tile_b[k][tx + j * GEMM_THREADS];
            for (int i = 0; i < GEMM_BLOCK; ++i)
                for (int j = 0; j < GEMM_BLOCK; ++j)
                    acc[i][j] += row[i] * col[j];
        }
        LOCAL_BARRIER;
    }
    for (int i = 0; i < GEMM_BLOCK; ++i) {
        const int m = m0 + ty + i * GEMM_THREADS;
        if (m >= M)
            continue;
        for (int j = 0; j < GEMM_BLOCK; ++j) {
            const int n = n0 + tx + j * GEMM_THREADS;
            if (n < N)
                c[m * ldc + n] = beta == 0 ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c[m * ldc + n];
        }
    }
}
