/* The panel lowering: convolutions with vertical stride 1 as register-blocked products over a
 * lowering laid out in panels, so no BLAS packs an operand again.
 *
 * The row lowering R of one image and group (see lowering.pyx) has one row per (channel c,
 * kernel column j), k = c*kw + j, and one column per (lowered row hr, output column ow),
 * R[k, (hr, ow)] = x[c, hr - pad_h, ow*stride_w + j*dilation_w - pad_w] (0 outside the image),
 * hr in [0, out_h + (kh-1)*dilation_h). Here it is stored in *panels* of LANES output columns
 * (one vector: 8 floats or 4 doubles): panel (hr, pb) holds columns pb*LANES .. pb*LANES+LANES-1
 * of row hr as [k][LANES], rows padded to a whole number of panels with zeros. Output row oh with
 * kernel row i reads lowered row oh + i*dilation_h, so kernel row i's operand is R's panels
 * shifted by a whole number of panels, and the convolution of one block of outputs (4 output
 * channels x up to 3 panels: 12 vector accumulators) sums over every kernel row and k in
 * registers, storing once. The gradients use the same layout: the data gradient is a product of
 * the top's diff in panels (with zero rows above and below, so that every kernel row can be
 * read) into R's panels, scattered back; the weight gradient broadcasts R's values against the
 * top's diff stored pixel-major (a vector of output channels per pixel) and sums over pixels in
 * registers.
 *
 * A block of panels spanning several output rows runs the kernel rows any of them needs; the
 * others read zero rows. Every product is a sum of the same terms as Caffe's GEMMs in another
 * order (float reordering only); the multiply-adds are fused where the target has FMA, as BLAS
 * fuses them.
 *
 * The kernels themselves are in conv_panels_impl.h, included below once for float (names ending
 * in _f) and once for double (_d); lowering.pyx calls them.
 */
#ifndef CCT_CONV_PANELS_H
#define CCT_CONV_PANELS_H

#include <stddef.h>
#include <string.h>
#if defined(__AVX__) && defined(__FMA__)
#include <immintrin.h>
#endif

/* Without AVX (CCT_PORTABLE builds) GCC warns that 32-byte vectors are passed differently; these
 * functions are all static, so no call crosses an ABI boundary. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float cct_pv_f __attribute__((vector_size(32)));
typedef double cct_pv_d __attribute__((vector_size(32)));
/* the same vectors at any address of their element type (unaligned loads) */
typedef float cct_pv_fu __attribute__((vector_size(32), aligned(4), may_alias));
typedef double cct_pv_du __attribute__((vector_size(32), aligned(8), may_alias));
#define CCT_SPLAT_F(s) ((cct_pv_f){(s), (s), (s), (s), (s), (s), (s), (s)})
#define CCT_SPLAT_D(s) ((cct_pv_d){(s), (s), (s), (s)})

static inline cct_pv_f cct_fma_f(cct_pv_f a, cct_pv_f b, cct_pv_f c)
{
#if defined(__AVX__) && defined(__FMA__)
    return (cct_pv_f)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    return a * b + c;
#endif
}

static inline cct_pv_d cct_fma_d(cct_pv_d a, cct_pv_d b, cct_pv_d c)
{
#if defined(__AVX__) && defined(__FMA__)
    return (cct_pv_d)_mm256_fmadd_pd((__m256d)a, (__m256d)b, (__m256d)c);
#else
    return a * b + c;
#endif
}

/* The output columns ow < out_w with 0 <= ow*stride + offset < width, as [*begin, *end)
 * (every lowering in lowering.pyx uses this one). */
static inline void cct_valid_columns(ptrdiff_t offset, ptrdiff_t width, ptrdiff_t stride,
                                     ptrdiff_t out_w, ptrdiff_t *begin, ptrdiff_t *end)
{
    ptrdiff_t lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    ptrdiff_t hi = width - offset <= 0 ? 0 : (width - offset + stride - 1) / stride;
    /* A tap that reads only padding (offset beyond the row, or wider padding than the image)
       has no valid column: both ends are clamped into [0, out_w] so callers never step past
       the row. */
    if (lo > out_w)
        lo = out_w;
    if (hi > out_w)
        hi = out_w;
    if (hi < lo)
        hi = lo;
    *begin = lo;
    *end = hi;
}

/* One convolution's geometry for one group, and the panel layout derived from it. */
typedef struct {
    int kernel_h, kernel_w, pad_h, pad_w, stride_w, dilation_h, dilation_w;
    int out_h, out_w, height, width;
    int channels, outputs;      /* per group */
    int lanes;                  /* values per panel row: 32 bytes */
    int ppr;                    /* panels per row: ceil(out_w / lanes) */
    int rows;                   /* R's rows: out_h + (kh-1)*dilation_h */
    int top_pad;                /* zero rows above and below the top's panels: (kh-1)*dilation_h */
    int k;                      /* R's rows per column: channels * kernel_w */
    int k_w;                    /* rows of R per weight-gradient block: 3 (by 4 vectors of
                                 * outputs) when the outputs fill a multiple of 4 vectors, else 4
                                 * (by up to 3) */
    int k_r;                    /* R's panel depth: k rounded up to k_w */
    int k_d;                    /* the data gradient's panel depth: k rounded up to 4 */
    int m_p;                    /* the top's panel depth: outputs rounded up to 4 */
    int m_t;                    /* the pixel-major top's row: outputs rounded up to a vector */
} cct_panels;

static inline int cct_round_up(int a, int b) { return (a + b - 1) / b * b; }

static inline void cct_panels_init(cct_panels *g, int itemsize)
{
    g->lanes = 32 / itemsize;
    g->ppr = (g->out_w + g->lanes - 1) / g->lanes;
    g->rows = g->out_h + (g->kernel_h - 1) * g->dilation_h;
    g->top_pad = (g->kernel_h - 1) * g->dilation_h;
    g->k = g->channels * g->kernel_w;
    g->m_t = cct_round_up(g->outputs, g->lanes);
    g->k_w = g->m_t / g->lanes % 4 == 0 ? 3 : 4;
    g->k_r = cct_round_up(g->k, g->k_w);
    g->k_d = cct_round_up(g->k, 4);
    g->m_p = cct_round_up(g->outputs, 4);
}

/* Values of each buffer, for one image. */
static inline ptrdiff_t cct_panels_r_size(const cct_panels *g)
{
    return (ptrdiff_t)g->rows * g->ppr * g->k_r * g->lanes;
}

static inline ptrdiff_t cct_panels_top_size(const cct_panels *g)
{
    return (ptrdiff_t)(g->out_h + 2 * g->top_pad) * g->ppr * g->m_p * g->lanes;
}

static inline ptrdiff_t cct_panels_top_t_size(const cct_panels *g)
{
    return (ptrdiff_t)g->out_h * g->ppr * g->lanes * g->m_t;
}

/* A thread's weight-gradient sums for one group: [kernel row][k_r][m_t]. */
static inline ptrdiff_t cct_panels_weight_sums(const cct_panels *g)
{
    return (ptrdiff_t)g->kernel_h * g->k_r * g->m_t;
}

static inline ptrdiff_t cct_panels_dr_size(const cct_panels *g)
{
    return (ptrdiff_t)g->rows * g->ppr * g->k_d * g->lanes;
}

/* Packed weights of one group, for the forward product and for the data gradient. */
static inline ptrdiff_t cct_panels_forward_weights(const cct_panels *g)
{
    return (ptrdiff_t)cct_round_up(g->outputs, 4) * g->kernel_h * g->k;
}

static inline ptrdiff_t cct_panels_backward_weights(const cct_panels *g)
{
    return (ptrdiff_t)g->k_d * g->kernel_h * g->outputs;
}

/* The kernel rows [*lo, *hi) that output rows [first, last] need in the forward product: those
 * whose input row oh + i*dilation_h - pad_h lies in the image for some oh of the block. */
static inline void cct_forward_taps(const cct_panels *g, int first, int last, int *lo, int *hi)
{
    /* i valid for oh: pad_h - oh <= i*d <= height - 1 + pad_h - oh; the union over the block is
     * from the last row's lower bound to the first row's upper bound */
    int d = g->dilation_h, a = g->pad_h - last, b = g->height - 1 + g->pad_h - first;
    int l = a <= 0 ? 0 : (a + d - 1) / d;
    int h = b < 0 ? -1 : b / d;
    if (h > g->kernel_h - 1)
        h = g->kernel_h - 1;
    *lo = l;
    *hi = h + 1 > l ? h + 1 : l;
}

/* The kernel rows [*lo, *hi) that lowered rows [first, last] need in the data gradient: those
 * for which hr - i*dilation_h is an output row for some hr of the block. */
static inline void cct_backward_taps(const cct_panels *g, int first, int last, int *lo, int *hi)
{
    int d = g->dilation_h, a = first - (g->out_h - 1), b = last;
    int l = a <= 0 ? 0 : (a + d - 1) / d;
    int h = b / d;
    if (h > g->kernel_h - 1)
        h = g->kernel_h - 1;
    *lo = l;
    *hi = h + 1 > l ? h + 1 : l;
}

/* How many vectors of outputs the weight-gradient block starting at vector v of ``vectors``
 * covers: threes, but two twos instead of a three and a one (a 4x1 block is latency bound). */
static inline int cct_weight_block(int v, int vectors)
{
    int left = vectors - v;
    if (left >= 3 && left != 4)
        return 3;
    return left >= 2 ? 2 : left;
}

/* The panels a product computes, [*first, *last): every output panel (forward), or the panels
 * of R's rows that hold image rows (the data gradient: the only ones scattered back). */
static inline void cct_panel_range(const cct_panels *g, int data_gradient, int *first,
                                   int *last)
{
    int top = 0, bottom = g->out_h;
    if (data_gradient) {
        top = g->pad_h < g->rows ? g->pad_h : g->rows;
        bottom = g->pad_h + g->height < g->rows ? g->pad_h + g->height : g->rows;
    }
    *first = top * g->ppr;
    *last = bottom * g->ppr;
}

/* The block of panels that starts at panel p of a range ending at ``last``: returns its size
 * (3, or what is left) and sets the kernel rows [*lo, *hi) it runs. */
static inline int cct_panel_block(const cct_panels *g, int data_gradient, int p, int last,
                                  int *lo, int *hi)
{
    int np = last - p < 3 ? last - p : 3;
    if (data_gradient)
        cct_backward_taps(g, p / g->ppr, (p + np - 1) / g->ppr, lo, hi);
    else
        cct_forward_taps(g, p / g->ppr, (p + np - 1) / g->ppr, lo, hi);
    return np;
}

/* The forward product's or the data gradient's panels times the kernel rows each runs, as the
 * kernels take them. Rows of the output (forward) or of R (data gradient) on which no kernel row
 * needs the block still count what they read. */
static inline ptrdiff_t cct_panels_work(const cct_panels *g, int data_gradient)
{
    int first, last, np, lo, hi;
    ptrdiff_t work = 0;
    cct_panel_range(g, data_gradient, &first, &last);
    for (int p = first; p < last; p += np) {
        np = cct_panel_block(g, data_gradient, p, last, &lo, &hi);
        work += (ptrdiff_t)np * (hi - lo);
    }
    return work;
}

#define CCT_PANEL_T float
#define CCT_PANEL_V cct_pv_f
#define CCT_PANEL_LANES 8
#define CCT_PANEL_FMA cct_fma_f
#define CCT_PANEL_LOAD(p) (*(const cct_pv_fu *)(p))
#define CCT_PANEL_SPLAT CCT_SPLAT_F
#define CCT_PANEL(name) name##_f
#include "conv_panels_impl.h"
#undef CCT_PANEL_T
#undef CCT_PANEL_V
#undef CCT_PANEL_LANES
#undef CCT_PANEL_FMA
#undef CCT_PANEL_LOAD
#undef CCT_PANEL_SPLAT
#undef CCT_PANEL

#define CCT_PANEL_T double
#define CCT_PANEL_V cct_pv_d
#define CCT_PANEL_LANES 4
#define CCT_PANEL_FMA cct_fma_d
#define CCT_PANEL_LOAD(p) (*(const cct_pv_du *)(p))
#define CCT_PANEL_SPLAT CCT_SPLAT_D
#define CCT_PANEL(name) name##_d
#include "conv_panels_impl.h"
#undef CCT_PANEL_T
#undef CCT_PANEL_V
#undef CCT_PANEL_LANES
#undef CCT_PANEL_FMA
#undef CCT_PANEL_LOAD
#undef CCT_PANEL_SPLAT
#undef CCT_PANEL

#endif
