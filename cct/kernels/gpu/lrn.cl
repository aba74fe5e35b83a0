/* Local response normalization on (N, C, H, W): scale, output and data gradient for both regions
 * (Caffe's lrn_layer.cpp/.cu; WITHIN_CHANNEL as the Power/AVE-pooling/Eltwise chain Caffe builds).
 *
 * ACROSS: scale = k + alpha/size * sum of x^2 over the `size` channels centred on c (zero beyond the
 * edges); WITHIN: scale = 1 + alpha/size^2 * sum of x^2 over the size x size window centred on the
 * pixel (zero padding counted, so always size^2 cells). `a` below is alpha/size or alpha/size^2 and
 * `k` is k or 1. y = x * scale^-beta; dx = dy * scale^-beta - ratio * x * window_sum(dy * y / scale)
 * with ratio = 2*a*beta: the window is symmetric, so the pixels whose windows hold x are x's window.
 */
KERNEL lrn_scale(const int n, const int channels, const int height, const int width,
                 const int size, const int within, const REAL a, const REAL k,
                 ARRAY(const REAL, bottom), ARRAY(REAL, scale))
{
    OFFSET(bottom); OFFSET(scale);
    const int reach = (size - 1) / 2, plane = height * width;
    KERNEL_LOOP(index, n) {
        REAL total = 0;
        if (within) {
            const int w = index % width, h = (index / width) % height;
            GLOBAL const REAL *slice = bottom + (index / plane) * plane;
            for (int hh = max(h - reach, 0); hh < min(h + reach + 1, height); ++hh)
                for (int ww = max(w - reach, 0); ww < min(w + reach + 1, width); ++ww)
                    total += slice[hh * width + ww] * slice[hh * width + ww];
        } else {
            const int c = (index / plane) % channels, pixel = index % plane;
            GLOBAL const REAL *column = bottom + (index / (plane * channels)) * plane * channels + pixel;
            for (int cc = max(c - reach, 0); cc < min(c + reach + 1, channels); ++cc)
                total += column[cc * plane] * column[cc * plane];
        }
        scale[index] = k + a * total;
    }
}

KERNEL lrn_output(const int n, ARRAY(const REAL, bottom), ARRAY(const REAL, scale),
                  const REAL negative_beta, ARRAY(REAL, top))
{
    OFFSET(bottom); OFFSET(scale); OFFSET(top);
    KERNEL_LOOP(i, n) top[i] = bottom[i] * pow(scale[i], negative_beta);
}

KERNEL lrn_backward(const int n, const int channels, const int height, const int width,
                    const int size, const int within, const REAL negative_beta, const REAL ratio,
                    ARRAY(const REAL, bottom), ARRAY(const REAL, top), ARRAY(const REAL, scale),
                    ARRAY(const REAL, top_diff), ARRAY(REAL, bottom_diff))
{
    OFFSET(bottom); OFFSET(top); OFFSET(scale); OFFSET(top_diff); OFFSET(bottom_diff);
    const int reach = (size - 1) / 2, plane = height * width;
    KERNEL_LOOP(index, n) {
        REAL total = 0;
        if (within) {
            const int w = index % width, h = (index / width) % height;
            const int start = (index / plane) * plane;
            for (int hh = max(h - reach, 0); hh < min(h + reach + 1, height); ++hh)
                for (int ww = max(w - reach, 0); ww < min(w + reach + 1, width); ++ww) {
                    const int j = start + hh * width + ww;
                    total += top_diff[j] * top[j] / scale[j];
                }
        } else {
            const int c = (index / plane) % channels;
            const int start = (index / (plane * channels)) * plane * channels + index % plane;
            for (int cc = max(c - reach, 0); cc < min(c + reach + 1, channels); ++cc) {
                const int j = start + cc * plane;
                total += top_diff[j] * top[j] / scale[j];
            }
        }
        bottom_diff[index] = top_diff[index] * pow(scale[index], negative_beta)
            - ratio * bottom[index] * total;
    }
}
