/* Reductions and the softmax family: partial sums of x, |x| and a*b per work-group (the runtime adds
 * the partials in float64), per-channel sums (bias gradients, BatchNorm), softmax along an axis and
 * its backward, and SoftmaxWithLoss's per-position loss and gradient.
 *
 * Sums accumulate in ACCUM (double where the device has it, else float), as the CPU device sums in
 * float64. Reducing kernels run REDUCE_SIZE work-items per group and halve a local array.
 */
#ifndef ACCUM
#define ACCUM REAL
#endif

/* Caffe's FLT_MIN floor of a probability before its log (softmax_loss_layer.cpp). */
#define CCT_FLT_MIN 1.175494351e-38f

/* partials[group] = sum over this group's share of f(a[i], b[i]): op 0 sum a, 1 sum |a|, 2 sum a*b. */
KERNEL reduce_partials(const int op, const int n, ARRAY(const REAL, a), ARRAY(const REAL, b),
                       GLOBAL ACCUM *partials)
{
    OFFSET(a); OFFSET(b);
    LOCAL ACCUM shared_sums[REDUCE_SIZE];
    ACCUM total = 0;
    KERNEL_LOOP(i, n) {
        const ACCUM v = (ACCUM)a[i];
        total += op == 0 ? v : (op == 1 ? fabs(v) : v * (ACCUM)b[i]);
    }
    const int t = LOCAL_ID(0);
    shared_sums[t] = total;
    LOCAL_BARRIER;
    for (int stride = REDUCE_SIZE / 2; stride > 0; stride /= 2) {
        if (t < stride)
            shared_sums[t] += shared_sums[t + stride];
        LOCAL_BARRIER;
    }
    if (t == 0)
        partials[GROUP_ID(0)] = shared_sums[0];
}

/* x (and y) as (outer, channels, inner), one work-group per channel:
 * out[c] = sum + (accumulate ? out[c] : 0), the sum over o and i of x (op 0) or of min(x, 0) * y
 * (op 1: PReLU's slope gradient, y the top gradient), accumulated in ACCUM and rounded once. */
KERNEL channel_sum(const int op, const int outer, const int channels, const int inner,
                   ARRAY(const REAL, x), ARRAY(const REAL, y), ARRAY(REAL, out),
                   const int accumulate)
{
    OFFSET(x); OFFSET(y); OFFSET(out);
    LOCAL ACCUM shared_sums[REDUCE_SIZE];
    const int c = GROUP_ID(0), t = LOCAL_ID(0);
    ACCUM total = 0;
    for (int i = t; i < outer * inner; i += REDUCE_SIZE) {
        const int j = ((i / inner) * channels + c) * inner + i % inner;
        total += op == 0 ? (ACCUM)x[j] : (ACCUM)fmin(x[j], (REAL)0) * (ACCUM)y[j];
    }
    shared_sums[t] = total;
    LOCAL_BARRIER;
    for (int stride = REDUCE_SIZE / 2; stride > 0; stride /= 2) {
        if (t < stride)
            shared_sums[t] += shared_sums[t + stride];
        LOCAL_BARRIER;
    }
    if (t == 0)
        out[c] = accumulate ? out[c] + (REAL)shared_sums[0] : (REAL)shared_sums[0];
}

/* Along the channel axis of (outer, channels, inner), one work-item per (o, i):
 * out = exp(x - max) / sum(exp(x - max)), Caffe's softmax_layer.cu in one pass per position. */
KERNEL softmax_forward(const int outer, const int channels, const int inner, ARRAY(const REAL, x),
                       ARRAY(REAL, out))
{
    OFFSET(x); OFFSET(out);
    KERNEL_LOOP(index, outer * inner) {
        const int start = (index / inner) * channels * inner + index % inner;
        REAL largest = -REAL_MAX;
        for (int c = 0; c < channels; ++c)
            largest = fmax(largest, x[start + c * inner]);
        REAL total = 0;
        for (int c = 0; c < channels; ++c) {
            const REAL e = exp(x[start + c * inner] - largest);
            out[start + c * inner] = e;
            total += e;
        }
        for (int c = 0; c < channels; ++c)
            out[start + c * inner] /= total;
    }
}

/* dx = (dy - sum_c(dy * y)) * y along the channel axis; dx may alias dy. */
KERNEL softmax_backward(const int outer, const int channels, const int inner, ARRAY(const REAL, y),
                        ARRAY(const REAL, dy), ARRAY(REAL, dx))
{
    OFFSET(y); OFFSET(dy); OFFSET(dx);
    KERNEL_LOOP(index, outer * inner) {
        const int start = (index / inner) * channels * inner + index % inner;
        REAL dot = 0;
        for (int c = 0; c < channels; ++c)
            dot += dy[start + c * inner] * y[start + c * inner];
        for (int c = 0; c < channels; ++c)
            dx[start + c * inner] = (dy[start + c * inner] - dot) * y[start + c * inner];
    }
}

/* Per position (o, i) with label l: loss -log(max(prob[o, l, i], FLT_MIN)) and count 1, or 0 and 0
 * where l is the ignored label (has_ignore). */
KERNEL softmax_loss(const int outer, const int channels, const int inner, ARRAY(const REAL, prob),
                    ARRAY(const REAL, labels), ARRAY(REAL, losses), ARRAY(REAL, counts),
                    const int has_ignore, const int ignore_label)
{
    OFFSET(prob); OFFSET(labels); OFFSET(losses); OFFSET(counts);
    KERNEL_LOOP(index, outer * inner) {
        const int label = (int)labels[index];
        if (has_ignore && label == ignore_label) {
            losses[index] = 0;
            counts[index] = 0;
        } else {
            const int o = index / inner, i = index % inner;
            losses[index] = -log(fmax(prob[(o * channels + label) * inner + i], (REAL)CCT_FLT_MIN));
            counts[index] = 1;
        }
    }
}

/* dx = prob - 1 at each position's label; the whole position is 0 where the label is ignored. */
KERNEL softmax_loss_backward(const int outer, const int channels, const int inner,
                             ARRAY(const REAL, prob), ARRAY(const REAL, labels), ARRAY(REAL, dx),
                             const int has_ignore, const int ignore_label)
{
    OFFSET(prob); OFFSET(labels); OFFSET(dx);
    KERNEL_LOOP(index, outer * channels * inner) {
        const int i = index % inner, c = (index / inner) % channels, o = index / (inner * channels);
        const int label = (int)labels[o * inner + i];
        if (has_ignore && label == ignore_label)
            dx[index] = 0;
        else
            dx[index] = c == label ? prob[index] - (REAL)1 : prob[index];
    }
}

/* The last step of a GEMM split along k: C = alpha * sum_s partials[s] + beta * C, partials being
 * `splits` dense m x n products and C an m x n matrix with leading dimension ldc (beta == 0 never reads
 * C). */
KERNEL combine_partials(const int splits, const int m, const int n, ARRAY(const REAL, partials),
                        const REAL alpha, const REAL beta, ARRAY(REAL, C), const int ldc)
{
    OFFSET(partials); OFFSET(C);
    KERNEL_LOOP(index, m * n) {
        ACCUM total = 0;
        for (int s = 0; s < splits; ++s)
            total += (ACCUM)partials[s * m * n + index];
        GLOBAL REAL *out = C + (index / n) * ldc + index % n;
        *out = beta == 0 ? alpha * (REAL)total : alpha * (REAL)total + beta * *out;
    }
}

/* out[o, i] = sum over t of x[o, t, i], x as (outer, count, inner): Tile's gradient, Reduction. */
KERNEL sum_axis(const int outer, const int count, const int inner, ARRAY(const REAL, x),
                ARRAY(REAL, out))
{
    OFFSET(x); OFFSET(out);
    KERNEL_LOOP(index, outer * inner) {
        GLOBAL const REAL *start = x + (index / inner) * count * inner + index % inner;
        ACCUM total = 0;
        for (int t = 0; t < count; ++t)
            total += (ACCUM)start[t * inner];
        out[index] = (REAL)total;
    }
}

/* out[r] = sum over j of a[r, j] * b[r, j], a and b as (rows, count), one work-item per row:
 * Reduction SUMSQ (a == b) and ContrastiveLoss's squared distances. */
KERNEL dot_rows(const int rows, const int count, ARRAY(const REAL, a), ARRAY(const REAL, b),
                ARRAY(REAL, out))
{
    OFFSET(a); OFFSET(b); OFFSET(out);
    KERNEL_LOOP(r, rows) {
        ACCUM total = 0;
        for (int j = 0; j < count; ++j)
            total += (ACCUM)a[r * count + j] * (ACCUM)b[r * count + j];
        out[r] = (REAL)total;
    }
}

/* SigmoidCrossEntropyLoss per element (sigmoid_cross_entropy_loss_layer.cpp): sigmoid kept for the
 * backward, term = x*(target - p) - log1p(exp(x - 2*x*p)) with p = (x >= 0), and with an ignored label
 * (has_ignore) valid = (int)target != ignore_label, the term and count of an ignored element being 0. */
KERNEL sigmoid_cross_entropy(const int n, ARRAY(const REAL, x), ARRAY(const REAL, target),
                             ARRAY(REAL, sigmoid), ARRAY(REAL, terms), ARRAY(REAL, counts),
                             ARRAY(int, valid), const int has_ignore, const int ignore_label)
{
    OFFSET(x); OFFSET(target); OFFSET(sigmoid); OFFSET(terms); OFFSET(counts); OFFSET(valid);
    KERNEL_LOOP(i, n) {
        const REAL v = x[i];
        const REAL p = v >= 0 ? (REAL)1 : (REAL)0;
        sigmoid[i] = tanh((REAL)0.5 * v) * (REAL)0.5 + (REAL)0.5;
        const int keep = !has_ignore || (int)target[i] != ignore_label;
        if (has_ignore)
            valid[i] = keep;
        terms[i] = keep ? v * (target[i] - p) - log1p(exp(v - (REAL)2 * v * p)) : (REAL)0;
        counts[i] = (REAL)keep;
    }
}
