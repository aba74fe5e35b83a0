/* The panel kernels for one value type (included twice by conv_panels.h, with CCT_PANEL_T, CCT_PANEL_V,
 * CCT_PANEL_LANES, CCT_PANEL_FMA and CCT_PANEL(name) defined). Layouts: see conv_panels.h. */

#define T CCT_PANEL_T
#define V CCT_PANEL_V
#define L CCT_PANEL_LANES

/* out[r*np + q] = sum over taps t < taps and l < inner of
 *     a[t*a_tap + l*4 + r] * b[t*b_tap + q*b_panel + l*L .. +L]
 * for 4 rows r and np panels q: 4*np vector accumulators, stored once. */
#define CCT_MICRO(NP)                                                                          \
static inline void CCT_PANEL(cct_micro4x##NP)(const T *a, ptrdiff_t a_tap, const T *b,       \
                                              ptrdiff_t b_tap, ptrdiff_t b_panel, int inner,  \
                                              int taps, V *out)                               \
{                                                                                              \
    V acc[4][NP];                                                                              \
    for (int r = 0; r < 4; r++)                                                                \
        for (int q = 0; q < NP; q++)                                                           \
            acc[r][q] = (V){0};                                                                \
    for (int t = 0; t < taps; t++) {                                                           \
        const T *at = a + t * a_tap;                                                           \
        const T *bt = b + t * b_tap;                                                           \
        for (int l = 0; l < inner; l++, at += 4, bt += L) {                                    \
            V bv[NP];                                                                          \
            for (int q = 0; q < NP; q++)                                                       \
                bv[q] = CCT_PANEL_LOAD(bt + q * b_panel);                                      \
            for (int r = 0; r < 4; r++) {                                                      \
                V av = CCT_PANEL_SPLAT(at[r]);                                                 \
                for (int q = 0; q < NP; q++)                                                   \
                    acc[r][q] = CCT_PANEL_FMA(av, bv[q], acc[r][q]);                           \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    for (int r = 0; r < 4; r++)                                                                \
        for (int q = 0; q < NP; q++)                                                           \
            out[r * NP + q] = acc[r][q];                                                       \
}
CCT_MICRO(1)
CCT_MICRO(2)
CCT_MICRO(3)
#undef CCT_MICRO

static inline void CCT_PANEL(cct_micro)(int np, const T *a, ptrdiff_t a_tap, const T *b,
                                        ptrdiff_t b_tap, ptrdiff_t b_panel, int inner, int taps,
                                        V *out)
{
    if (taps <= 0 || inner <= 0) {
        for (int q = 0; q < 4 * np; q++)
            out[q] = (V){0};
    } else if (np == 3) {
        CCT_PANEL(cct_micro4x3)(a, a_tap, b, b_tap, b_panel, inner, taps, out);
    } else if (np == 2) {
        CCT_PANEL(cct_micro4x2)(a, a_tap, b, b_tap, b_panel, inner, taps, out);
    } else {
        CCT_PANEL(cct_micro4x1)(a, a_tap, b, b_tap, b_panel, inner, taps, out);
    }
}

/* wf[mb][i][k][4] = W[mb*4 + r, c, i, j] (k = c*kw + j; 0 past the group's outputs); ``w`` is
 * the group's first weight row, rows ``ldw`` apart. */
static void CCT_PANEL(cct_panels_pack_forward)(const T *w, ptrdiff_t ldw, const cct_panels *g,
                                               T *wf)
{
    int kh = g->kernel_h, kw = g->kernel_w, blocks = (g->outputs + 3) / 4;
    for (int mb = 0; mb < blocks; mb++)
        for (int i = 0; i < kh; i++)
            for (int k = 0; k < g->k; k++)
                for (int r = 0; r < 4; r++) {
                    int m = mb * 4 + r, c = k / kw, j = k % kw;
                    wf[(((ptrdiff_t)mb * kh + i) * g->k + k) * 4 + r] =
                        m < g->outputs ? w[m * ldw + ((ptrdiff_t)c * kh + i) * kw + j] : 0;
                }
}

/* wb[kb][i][m][4] = W[m, c, i, j] for k = kb*4 + r = c*kw + j (0 past k). */
static void CCT_PANEL(cct_panels_pack_backward)(const T *w, ptrdiff_t ldw, const cct_panels *g,
                                                T *wb)
{
    int kh = g->kernel_h, kw = g->kernel_w, blocks = g->k_d / 4;
    for (int kb = 0; kb < blocks; kb++)
        for (int i = 0; i < kh; i++)
            for (int m = 0; m < g->outputs; m++)
                for (int r = 0; r < 4; r++) {
                    int k = kb * 4 + r, c = k / kw, j = k % kw;
                    wb[(((ptrdiff_t)kb * kh + i) * g->outputs + m) * 4 + r] =
                        k < g->k ? w[m * ldw + ((ptrdiff_t)c * kh + i) * kw + j] : 0;
                }
}

/* R of one image's group: ``x`` is its first channel plane (channels planes of height*width). */
static void CCT_PANEL(cct_panels_lower)(const T *x, const cct_panels *g, T *R)
{
    int ppr = g->ppr, kw = g->kernel_w, sw = g->stride_w, tail = g->out_w % L;
    ptrdiff_t depth = (ptrdiff_t)g->k_r * L, plane = (ptrdiff_t)g->height * g->width;
    for (int hr = 0; hr < g->rows; hr++) {
        int ih = hr - g->pad_h;
        T *row = R + (ptrdiff_t)hr * ppr * depth;
        if (ih < 0 || ih >= g->height) {
            memset(row, 0, (size_t)ppr * depth * sizeof(T));
            continue;
        }
        for (int pb = 0; pb < ppr; pb++)   /* the rows past k (a loop: a call costs more) */
            for (ptrdiff_t q = (ptrdiff_t)g->k * L; q < depth; q++)
                row[pb * depth + q] = 0;
        for (int c = 0; c < g->channels; c++) {
            const T *src = x + c * plane + (ptrdiff_t)ih * g->width;
            int pad = g->pad_w, span = ppr * L + (kw - 1) * g->dilation_w;
            if (sw == 1 && pad + g->width + span <= 16384) {
                /* the image row between zeros (on the stack: at most 64 KiB of floats): every
                 * panel of every kernel column is then one vector copied from it */
                T line[pad + g->width + span];
                for (int q = 0; q < pad; q++)
                    line[q] = 0;
                memcpy(line + pad, src, (size_t)g->width * sizeof(T));
                for (int q = pad + g->width; q < pad + g->width + span; q++)
                    line[q] = 0;
                for (int j = 0; j < kw; j++) {
                    /* column ow reads line[ow + j*dilation_w] (pad = pad_w) */
                    const T *from = line + j * g->dilation_w;
                    T *dst = row + (ptrdiff_t)(c * kw + j) * L;
                    for (int pb = 0; pb < ppr; pb++, dst += depth, from += L)
                        memcpy(dst, from, L * sizeof(T));
                    if (tail)
                        memset(dst - depth + tail, 0, (L - tail) * sizeof(T));
                }
            } else {
                for (int j = 0; j < kw; j++) {
                    int offset = j * g->dilation_w - g->pad_w;
                    ptrdiff_t begin, end;
                    T *dst = row + (ptrdiff_t)(c * kw + j) * L;
                    cct_valid_columns(offset, g->width, sw, g->out_w, &begin, &end);
                    for (int pb = 0; pb < ppr; pb++, dst += depth)
                        for (int lane = 0; lane < L; lane++) {
                            int ow = pb * L + lane;
                            dst[lane] = ow >= begin && ow < end ?
                                src[(ptrdiff_t)ow * sw + offset] : 0;
                        }
                }
            }
        }
    }
}

/* out (outputs x out_h*out_w) = W * lowered(x) (+ bias[m]) for one image's group. */
static void CCT_PANEL(cct_panels_forward)(const T *wf, const T *R, const cct_panels *g,
                                          const T *bias, T *out)
{
    int ppr = g->ppr, d = g->dilation_h, blocks = (g->outputs + 3) / 4, first, last;
    ptrdiff_t depth = (ptrdiff_t)g->k_r * L, pixels = (ptrdiff_t)g->out_h * g->out_w;
    V acc[12];
    cct_panel_range(g, 0, &first, &last);
    for (int mb = 0; mb < blocks; mb++) {
        for (int p = first, np, lo, hi; p < last; p += np) {
            np = cct_panel_block(g, 0, p, last, &lo, &hi);
            CCT_PANEL(cct_micro)(np, wf + ((ptrdiff_t)mb * g->kernel_h + lo) * g->k * 4,
                                 (ptrdiff_t)g->k * 4, R + (p + (ptrdiff_t)lo * d * ppr) * depth,
                                 (ptrdiff_t)d * ppr * depth, depth, g->k, hi - lo, acc);
            for (int r = 0; r < 4; r++) {
                int m = mb * 4 + r;
                if (m >= g->outputs)
                    break;
                T b = bias ? bias[m] : 0;
                for (int q = 0; q < np; q++) {
                    int oh = (p + q) / ppr, ow0 = (p + q) % ppr * L;
                    int n = g->out_w - ow0 < L ? g->out_w - ow0 : L;
                    T *dst = out + m * pixels + (ptrdiff_t)oh * g->out_w + ow0;
                    T lanes[L];
                    if (n == L) {   /* a whole panel: one vector store */
                        V v = bias ? acc[r * np + q] + CCT_PANEL_SPLAT(b) : acc[r * np + q];
                        memcpy(dst, &v, sizeof v);
                        continue;
                    }
                    memcpy(lanes, &acc[r * np + q], sizeof lanes);
                    if (bias) {
                        for (int lane = 0; lane < n; lane++)
                            dst[lane] = lanes[lane] + b;
                    } else {
                        for (int lane = 0; lane < n; lane++)
                            dst[lane] = lanes[lane];
                    }
                }
            }
        }
    }
}

/* The top's diff of one image's group (outputs x out_h*out_w) in panels, with top_pad zero rows
 * above and below, zero channels up to m_p and zero columns past out_w. */
static void CCT_PANEL(cct_panels_pack_top)(const T *dy, const cct_panels *g, T *tp)
{
    int ppr = g->ppr;
    ptrdiff_t depth = (ptrdiff_t)g->m_p * L, pixels = (ptrdiff_t)g->out_h * g->out_w;
    memset(tp, 0, (size_t)g->top_pad * ppr * depth * sizeof(T));
    memset(tp + (ptrdiff_t)(g->top_pad + g->out_h) * ppr * depth, 0,
           (size_t)g->top_pad * ppr * depth * sizeof(T));
    for (int oh = 0; oh < g->out_h; oh++)
        for (int pb = 0; pb < ppr; pb++) {
            T *dst = tp + ((ptrdiff_t)(oh + g->top_pad) * ppr + pb) * depth;
            int ow0 = pb * L, n = g->out_w - ow0 < L ? g->out_w - ow0 : L;
            for (int m = 0; m < g->m_p; m++, dst += L) {
                if (m >= g->outputs) {
                    memset(dst, 0, L * sizeof(T));
                } else if (n == L) {
                    memcpy(dst, dy + m * pixels + (ptrdiff_t)oh * g->out_w + ow0, L * sizeof(T));
                } else {
                    const T *src = dy + m * pixels + (ptrdiff_t)oh * g->out_w + ow0;
                    for (int lane = 0; lane < L; lane++)
                        dst[lane] = lane < n ? src[lane] : 0;
                }
            }
        }
}

/* dR = sum over kernel rows of W_i^T * (the top's diff shifted by i rows), for the lowered rows
 * that hold image rows (the only ones scattered back). */
static void CCT_PANEL(cct_panels_backward_data)(const T *wb, const T *tp, const cct_panels *g,
                                                T *dR)
{
    int ppr = g->ppr, d = g->dilation_h, blocks = g->k_d / 4, first, last;
    ptrdiff_t depth = (ptrdiff_t)g->k_d * L, top_depth = (ptrdiff_t)g->m_p * L;
    V acc[12];
    cct_panel_range(g, 1, &first, &last);
    for (int kb = 0; kb < blocks; kb++) {
        for (int p = first, np, lo, hi; p < last; p += np) {
            np = cct_panel_block(g, 1, p, last, &lo, &hi);
            CCT_PANEL(cct_micro)(np, wb + ((ptrdiff_t)kb * g->kernel_h + lo) * g->outputs * 4,
                                 (ptrdiff_t)g->outputs * 4,
                                 tp + (p + ((ptrdiff_t)g->top_pad - (ptrdiff_t)lo * d) * ppr) *
                                 top_depth, -(ptrdiff_t)d * ppr * top_depth, top_depth,
                                 g->outputs, hi - lo, acc);
            for (int r = 0; r < 4; r++)
                for (int q = 0; q < np; q++)
                    memcpy(dR + (p + q) * depth + (ptrdiff_t)(kb * 4 + r) * L, &acc[r * np + q],
                           sizeof(V));
        }
    }
}

/* Overwrite one image's group of planes with dR scattered back (col2im of the row lowering). */
static void CCT_PANEL(cct_panels_unlower)(const T *dR, const cct_panels *g, T *x)
{
    int ppr = g->ppr, kw = g->kernel_w, sw = g->stride_w;
    ptrdiff_t depth = (ptrdiff_t)g->k_d * L, plane = (ptrdiff_t)g->height * g->width;
    memset(x, 0, (size_t)g->channels * plane * sizeof(T));
    for (int c = 0; c < g->channels; c++)
        for (int j = 0; j < kw; j++) {
            int k = c * kw + j, offset = j * g->dilation_w - g->pad_w;
            ptrdiff_t begin, end;
            cct_valid_columns(offset, g->width, sw, g->out_w, &begin, &end);
            if (begin == end)
                continue;
            for (int ih = 0; ih < g->height; ih++) {
                int hr = ih + g->pad_h;
                const T *src = dR + (ptrdiff_t)hr * ppr * depth + (ptrdiff_t)k * L;
                T *dst = x + c * plane + (ptrdiff_t)ih * g->width + offset;
                for (int pb = begin / L; pb * L < end; pb++) {
                    int lo = pb * L > begin ? pb * L : begin;
                    int hi = pb * L + L < end ? pb * L + L : end;
                    const T *run = src + pb * depth - pb * L;
                    if (sw == 1 && hi - lo == L) {
                        V sum = CCT_PANEL_LOAD(dst + lo) + CCT_PANEL_LOAD(run + lo);
                        memcpy(dst + lo, &sum, sizeof sum);
                    } else if (sw == 1) {
                        for (int ow = lo; ow < hi; ow++)
                            dst[ow] += run[ow];
                    } else {
                        for (int ow = lo; ow < hi; ow++)
                            dst[(ptrdiff_t)ow * sw] += run[ow];
                    }
                }
            }
        }
}

/* The top's diff of one image's group pixel-major for the weight gradient: tt[q][m] with
 * q = oh*ppr*L + ow over whole panels of columns, m < m_t (0 past the outputs and out_w). */
static void CCT_PANEL(cct_panels_pack_top_t)(const T *dy, const cct_panels *g, T *tt)
{
    int width = g->ppr * L, m_t = g->m_t, outputs = g->outputs;
    ptrdiff_t pixels = (ptrdiff_t)g->out_h * g->out_w;
    for (int oh = 0; oh < g->out_h; oh++) {
        const T *src = dy + (ptrdiff_t)oh * g->out_w;
        T *dst = tt + (ptrdiff_t)oh * width * m_t;
        /* eight pixels at a time: their channels are read as eight running streams */
        int ow = 0;
        for (; ow + 8 <= g->out_w; ow += 8, dst += 8 * m_t) {
            for (int m = 0; m < outputs; m++)
                for (int e = 0; e < 8; e++)
                    dst[e * m_t + m] = src[m * pixels + ow + e];
            for (int e = 0; e < 8; e++)
                for (int m = outputs; m < m_t; m++)
                    dst[e * m_t + m] = 0;
        }
        for (; ow < width; ow++, dst += m_t) {
            if (ow < g->out_w) {
                for (int m = 0; m < outputs; m++)
                    dst[m] = src[m * pixels + ow];
                memset(dst + outputs, 0, (size_t)(m_t - outputs) * sizeof(T));
            } else {
                memset(dst, 0, (size_t)m_t * sizeof(T));
            }
        }
    }
}

/* partial[r*ld + q*L ..] += sum over ``count`` images and ``panels`` panels of their L columns
 * of R[p][r][lane] * tt[p*L + lane][q*L .. q*L + L]: KB rows of R (broadcast) by NP vectors of
 * outputs, KB*NP vector accumulators. */
#define CCT_WEIGHT_MICRO(KB, NP)                                                               \
static inline void CCT_PANEL(cct_weight##KB##x##NP)(const T *r0, ptrdiff_t depth,             \
                                                    ptrdiff_t r_size, const T *t0,            \
                                                    ptrdiff_t m_t, ptrdiff_t t_size,          \
                                                    int panels, int count, T *partial,        \
                                                    ptrdiff_t ld)                             \
{                                                                                              \
    V acc[KB][NP];                                                                             \
    for (int r = 0; r < KB; r++)                                                               \
        for (int q = 0; q < NP; q++)                                                           \
            acc[r][q] = (V){0};                                                                \
    for (int n = 0; n < count; n++) {                                                          \
        const T *rp = r0 + n * r_size, *tt = t0 + n * t_size;                                  \
        for (int p = 0; p < panels; p++, rp += depth) {                                        \
            for (int lane = 0; lane < L; lane++, tt += m_t) {                                  \
                V bv[NP];                                                                      \
                for (int q = 0; q < NP; q++)                                                   \
                    bv[q] = CCT_PANEL_LOAD(tt + q * L);                                        \
                for (int r = 0; r < KB; r++) {                                                 \
                    V av = CCT_PANEL_SPLAT(rp[r * L + lane]);                                  \
                    for (int q = 0; q < NP; q++)                                               \
                        acc[r][q] = CCT_PANEL_FMA(av, bv[q], acc[r][q]);                       \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    for (int r = 0; r < KB; r++)                                                               \
        for (int q = 0; q < NP; q++) {                                                         \
            V sum = CCT_PANEL_LOAD(partial + r * ld + q * L) + acc[r][q];                      \
            memcpy(partial + r * ld + q * L, &sum, sizeof sum);                                \
        }                                                                                      \
}
CCT_WEIGHT_MICRO(4, 1)
CCT_WEIGHT_MICRO(4, 2)
CCT_WEIGHT_MICRO(4, 3)
CCT_WEIGHT_MICRO(3, 4)
#undef CCT_WEIGHT_MICRO

/* partial[(i*k_r + k)*m_t + m] += sum over ``count`` images of R's row k shifted by kernel row i
 * times the top's diff of channel m, over the output rows whose input row lies in the image.
 * ``R`` and ``tt`` (cct_panels_pack_top_t) hold the images one after another. */
static void CCT_PANEL(cct_panels_weight_grad)(const T *tt, const T *R, int count,
                                              const cct_panels *g, T *partial)
{
    int ppr = g->ppr, d = g->dilation_h, vectors = g->m_t / L;
    ptrdiff_t depth = (ptrdiff_t)g->k_r * L, m_t = g->m_t;
    ptrdiff_t r_size = cct_panels_r_size(g), t_size = cct_panels_top_t_size(g);
    for (int i = 0; i < g->kernel_h; i++) {
        int oa = g->pad_h - i * d, ob = g->height + g->pad_h - i * d;
        if (oa < 0)
            oa = 0;
        if (ob > g->out_h)
            ob = g->out_h;
        if (ob <= oa)
            continue;
        for (int kb = 0; kb < g->k_r / g->k_w; kb++)
            for (int v = 0, np; v < vectors; v += np) {
                np = g->k_w == 3 ? 4 : cct_weight_block(v, vectors);
                T *out = partial + ((ptrdiff_t)i * g->k_r + kb * g->k_w) * m_t + v * L;
                const T *rp = R + ((ptrdiff_t)(oa + i * d) * ppr) * depth +
                              (ptrdiff_t)kb * g->k_w * L;
                const T *tp = tt + (ptrdiff_t)oa * ppr * L * m_t + v * L;
                int panels = (ob - oa) * ppr;
                if (np == 4)
                    CCT_PANEL(cct_weight3x4)(rp, depth, r_size, tp, m_t, t_size, panels, count,
                                             out, m_t);
                else if (np == 3)
                    CCT_PANEL(cct_weight4x3)(rp, depth, r_size, tp, m_t, t_size, panels, count,
                                             out, m_t);
                else if (np == 2)
                    CCT_PANEL(cct_weight4x2)(rp, depth, r_size, tp, m_t, t_size, panels, count,
                                             out, m_t);
                else
                    CCT_PANEL(cct_weight4x1)(rp, depth, r_size, tp, m_t, t_size, panels, count,
                                             out, m_t);
            }
    }
}

#undef T
#undef V
#undef L
