/* Elementwise families: fills and BLAS-1 (axpby, scale, mul), strided copies (Concat, Slice), bias
 * adds, the neuron table of devices/base.py UNARY_OPS forward and backward, and Dropout's masked scale.
 *
 * The unary ops share one kernel with an op code (the table's row), so a new neuron is a new case,
 * not a new kernel; the op is uniform across a launch, so the switch costs no divergence. Each case is
 * written in Caffe's order of operations (neuron_layer.cpp's family, power_layer.cpp, exp/log_layer.cpp).
 */
#define OP_RELU 0
#define OP_SIGMOID 1
#define OP_TANH 2
#define OP_ABS 3
#define OP_EXP 4
#define OP_LOG 5
#define OP_POWER 6
#define OP_BNLL 7
#define OP_ELU 8
#define OP_THRESHOLD 9
#define OP_CLIP 10

KERNEL fill(const int n, const REAL value, ARRAY(REAL, y))
{
    OFFSET(y);
    KERNEL_LOOP(i, n) y[i] = value;
}

/* y = alpha*x + beta*y; beta == 0 never reads y (BLAS's rule). */
KERNEL axpby(const int n, const REAL alpha, ARRAY(const REAL, x), const REAL beta, ARRAY(REAL, y))
{
    OFFSET(x); OFFSET(y);
    if (beta == 0) {
        KERNEL_LOOP(i, n) y[i] = alpha * x[i];
    } else if (alpha == 1 && beta == 1) {
        KERNEL_LOOP(i, n) y[i] = y[i] + x[i];
    } else {
        KERNEL_LOOP(i, n) y[i] = alpha * x[i] + beta * y[i];
    }
}

KERNEL scale(const int n, const REAL alpha, ARRAY(const REAL, x), ARRAY(REAL, y))
{
    OFFSET(x); OFFSET(y);
    KERNEL_LOOP(i, n) y[i] = alpha * x[i];
}

KERNEL mul(const int n, ARRAY(const REAL, a), ARRAY(const REAL, b), ARRAY(REAL, y))
{
    OFFSET(a); OFFSET(b); OFFSET(y);
    KERNEL_LOOP(i, n) y[i] = a[i] * b[i];
}

/* For o < outer: out[o*out_stride + j] (+)= source[o*source_stride + j], j < count. */
KERNEL strided_copy(const int outer, const int count, ARRAY(const REAL, source),
                    const int source_stride, ARRAY(REAL, out), const int out_stride,
                    const int accumulate)
{
    OFFSET(source); OFFSET(out);
    KERNEL_LOOP(index, outer * count) {
        const int o = index / count, j = index % count;
        const REAL value = source[o * source_stride + j];
        if (accumulate)
            out[o * out_stride + j] += value;
        else
            out[o * out_stride + j] = value;
    }
}

/* x as (outer, channels, inner): x[o, c, i] += bias[c]. */
KERNEL add_bias(const int outer, const int channels, const int inner, ARRAY(REAL, x),
                ARRAY(const REAL, bias))
{
    OFFSET(x); OFFSET(bias);
    KERNEL_LOOP(index, outer * channels * inner) x[index] += bias[(index / inner) % channels];
}

/* y = f(x). Scalars p0..p2 are per op: relu (slope); exp (inner_scale = ln(base)*scale,
 * outer_scale = base^shift); log (scale, shift, base_scale = 1/ln(base)); power (power, scale, shift);
 * elu (alpha); threshold (threshold); clip (low, high). */
KERNEL unary_forward(const int op, const int n, ARRAY(const REAL, x), ARRAY(REAL, y),
                     const REAL p0, const REAL p1, const REAL p2)
{
    OFFSET(x); OFFSET(y);
    KERNEL_LOOP(i, n) {
        const REAL v = x[i];
        REAL r;
        switch (op) {
        case OP_RELU: r = v > 0 ? v : v * p0; break;
        /* Caffe's sigmoid: 0.5 * tanh(0.5 * x) + 0.5 (sigmoid_layer.cpp). */
        case OP_SIGMOID: r = (REAL)0.5 * tanh((REAL)0.5 * v) + (REAL)0.5; break;
        case OP_TANH: r = tanh(v); break;
        case OP_ABS: r = fabs(v); break;
        case OP_EXP: r = p0 == 1 ? exp(v) : exp(p0 * v); if (p1 != 1) r = p1 * r; break;
        case OP_LOG: {
            REAL t = p0 != 1 ? v * p0 : v;
            if (p1 != 0) t = t + p1;
            r = log(t);
            if (p2 != 1) r = r * p2;
            break;
        }
        case OP_POWER:
            if (p0 * p1 == 0) {
                r = p0 == 0 ? (REAL)1 : pow(p2, p0);
            } else {
                REAL t = v * p1 + p2;
                r = p0 == 1 ? t : pow(t, p0);
            }
            break;
        case OP_BNLL: r = v > 0 ? v + log((REAL)1 + exp(-v)) : log((REAL)1 + exp(v)); break;
        case OP_ELU: r = v > 0 ? v : p0 * (exp(v) - (REAL)1); break;
        case OP_THRESHOLD: r = v > p0 ? (REAL)1 : (REAL)0; break;
        case OP_CLIP: r = fmax(p0, fmin(v, p1)); break;
        default: r = v; break;
        }
        y[i] = r;
    }
}

/* dx = dy * f'(x), from x and/or y as Caffe's backward reads them; dx may alias dy. */
KERNEL unary_backward(const int op, const int n, ARRAY(const REAL, x), ARRAY(const REAL, y),
                      ARRAY(const REAL, dy), ARRAY(REAL, dx), const REAL p0, const REAL p1,
                      const REAL p2)
{
    OFFSET(x); OFFSET(y); OFFSET(dy); OFFSET(dx);
    KERNEL_LOOP(i, n) {
        const REAL g = dy[i];
        REAL r;
        switch (op) {
        case OP_RELU: r = g * ((x[i] > 0) + p0 * (x[i] <= 0)); break;
        case OP_SIGMOID: r = g * y[i] * ((REAL)1 - y[i]); break;
        case OP_TANH: r = g * ((REAL)1 - y[i] * y[i]); break;
        case OP_ABS: r = g * (REAL)((0 < x[i]) - (x[i] < 0)); break;
        case OP_EXP: r = p0 != 1 ? y[i] * g * p0 : y[i] * g; break;
        case OP_LOG: {
            /* Caffe: 1/(scale*x + shift), times scale/ln(base) (p2 here), times dy. */
            REAL t = p0 != 1 ? x[i] * p0 : x[i];
            if (p1 != 0) t = t + p1;
            t = (REAL)1 / t;
            if (p2 != 1) t = t * p2;
            r = t * g;
            break;
        }
        case OP_POWER: {
            /* power_layer.cpp's cases: p0 power, p1 scale, p2 shift, diff_scale = power*scale. */
            const REAL diff_scale = p0 * p1;
            if (diff_scale == 0) {
                r = 0;
            } else if (p0 == 1) {
                r = diff_scale * g;
            } else if (p0 == 2) {
                r = x[i] * (diff_scale * p1);
                if (p2 != 0) r = r + diff_scale * p2;
                r = r * g;
            } else if (p2 == 0) {
                r = y[i] / x[i] * p0 * g;
            } else {
                REAL t = p1 != 1 ? x[i] * p1 : x[i];
                t = t + p2;
                t = y[i] / t;
                if (diff_scale != 1) t = t * diff_scale;
                r = t * g;
            }
            break;
        }
        case OP_BNLL: {
            /* Caffe's kBNLL_THRESHOLD: e^min(x, 50). */
            const REAL e = exp(fmin(x[i], (REAL)50));
            r = g * e / (e + (REAL)1);
            break;
        }
        case OP_ELU: r = x[i] > 0 ? g : g * (y[i] + p0); break;
        case OP_CLIP: r = g * (REAL)(x[i] >= p0 && x[i] <= p1); break;
        default: r = 0; break;
        }
        dx[i] = r;
    }
}

/* x as (outer, channels, inner): out = x OP values[c] (0 add, 1 sub, 2 mul, 3 div); out may be x. */
KERNEL channel_op(const int op, const int n, const int channels, const int inner,
                  ARRAY(const REAL, x), ARRAY(const REAL, values), ARRAY(REAL, out))
{
    OFFSET(x); OFFSET(values); OFFSET(out);
    KERNEL_LOOP(i, n) {
        const REAL v = values[(i / inner) % channels], a = x[i];
        out[i] = op == 0 ? a + v : (op == 1 ? a - v : (op == 2 ? a * v : a / v));
    }
}

/* PReLU: out = max(x, 0) + slopes[c] * min(x, 0), x as (outer, channels, inner). */
KERNEL prelu_forward(const int n, const int channels, const int inner, ARRAY(const REAL, x),
                     ARRAY(const REAL, slopes), ARRAY(REAL, out))
{
    OFFSET(x); OFFSET(slopes); OFFSET(out);
    KERNEL_LOOP(i, n) {
        const REAL v = x[i];
        out[i] = fmax(v, (REAL)0) + fmin(v, (REAL)0) * slopes[(i / inner) % channels];
    }
}

/* PReLU's data gradient: dx = dy * (1 if x > 0 else slopes[c]); dx may be dy. */
KERNEL prelu_backward(const int n, const int channels, const int inner, ARRAY(const REAL, x),
                      ARRAY(const REAL, slopes), ARRAY(const REAL, dy), ARRAY(REAL, dx))
{
    OFFSET(x); OFFSET(slopes); OFFSET(dy); OFFSET(dx);
    KERNEL_LOOP(i, n) dx[i] = dy[i] * (x[i] > 0 ? (REAL)1 : slopes[(i / inner) % channels]);
}

/* Eltwise MAX's running maximum (Caffe's MaxForward): bottom 0 copies itself with mask 0; bottom 1
 * wins unless the running value is strictly larger (a tie, or a NaN, goes to bottom 1); later bottoms
 * win only where strictly larger. */
KERNEL max_update(const int n, const int index, ARRAY(const REAL, x), ARRAY(REAL, out),
                  ARRAY(int, mask))
{
    OFFSET(x); OFFSET(out); OFFSET(mask);
    KERNEL_LOOP(i, n) {
        const REAL v = x[i];
        if (index == 0) {
            out[i] = v;
            mask[i] = 0;
        } else if (index == 1) {
            if (out[i] > v) {
                mask[i] = 0;
            } else {
                out[i] = v;
                mask[i] = 1;
            }
        } else if (v > out[i]) {
            out[i] = v;
            mask[i] = index;
        }
    }
}

/* dx = dy where mask == index, else 0 (Eltwise MAX's gradient). */
KERNEL mask_select(const int n, const int index, ARRAY(const REAL, dy), ARRAY(const int, mask),
                   ARRAY(REAL, dx))
{
    OFFSET(dy); OFFSET(mask); OFFSET(dx);
    KERNEL_LOOP(i, n) dx[i] = mask[i] == index ? dy[i] : (REAL)0;
}

/* out = x * mask * scale with a byte mask (Dropout). */
KERNEL masked_scale(const int n, ARRAY(const REAL, x), ARRAY(const unsigned char, mask),
                    const REAL scale, ARRAY(REAL, out))
{
    OFFSET(x); OFFSET(mask); OFFSET(out);
    KERNEL_LOOP(i, n) out[i] = x[i] * (REAL)mask[i] * scale;
}

/* out[r, j] = table[indices[r], j] (Embed, Filter, BatchReindex); indices checked by the caller. */
KERNEL gather_rows(const int rows, const int width, ARRAY(const REAL, table),
                   ARRAY(const int, indices), ARRAY(REAL, out))
{
    OFFSET(table); OFFSET(indices); OFFSET(out);
    KERNEL_LOOP(index, rows * width)
        out[index] = table[indices[index / width] * width + index % width];
}

/* table[indices[r], j] += values[r, j] for r in order (numpy.add.at): one work-item per column walks
 * the rows, so repeated indices add up in order without atomics. */
KERNEL scatter_add_rows(const int rows, const int width, ARRAY(const REAL, values),
                        ARRAY(const int, indices), ARRAY(REAL, table))
{
    OFFSET(values); OFFSET(indices); OFFSET(table);
    KERNEL_LOOP(j, width)
        for (int r = 0; r < rows; ++r)
            table[indices[r] * width + j] += values[r * width + j];
}

/* An N-d window of `source` (Crop): geometry holds ndim, then out's shape, source's strides and the
 * window's offsets, one per axis. Forward: out = source[window]; backward: source[window] = out (the
 * caller zeroes source first). */
KERNEL copy_window(const int n, ARRAY(const int, geometry), ARRAY(REAL, source), ARRAY(REAL, out),
                   const int backward)
{
    OFFSET(geometry); OFFSET(source); OFFSET(out);
    const int ndim = geometry[0];
    KERNEL_LOOP(index, n) {
        int rest = index, at = 0;
        for (int d = ndim - 1; d >= 0; --d) {
            const int size = geometry[1 + d];
            at += (rest % size + geometry[1 + 2 * ndim + d]) * geometry[1 + ndim + d];
            rest /= size;
        }
        if (backward)
            source[at] = out[index];
        else
            out[index] = source[at];
    }
}
