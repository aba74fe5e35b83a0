/* Pooling forward and backward on (N, C, H, W) planes: Caffe's pooling_layer.cu kernels.
 *
 * MAX keeps the first maximum (strict >) of each window clipped to the image, with its flat index in
 * the plane in `mask` (-1 when the window is empty); AVE divides by the window clipped to the padded
 * image (Caffe's pool_size); STOCHASTIC takes no padding: TRAIN picks the first position whose running
 * sum reaches (1 - u) * sum (u in [0, 1) from the device's RNG; the window's last cell if none does, as
 * cct's CPU kernel), TEST outputs sum(x^2)/sum(x) (0 unless the sum is positive). Backward kernels
 * gather per bottom pixel over the windows that cover it (no atomics).
 */
KERNEL max_pool_forward(const int n, const int channels, const int height, const int width,
                        const int out_h, const int out_w, const int kernel_h, const int kernel_w,
                        const int stride_h, const int stride_w, const int pad_h, const int pad_w,
                        ARRAY(const REAL, bottom), ARRAY(REAL, top), ARRAY(int, mask))
{
    OFFSET(bottom); OFFSET(top); OFFSET(mask);
    KERNEL_LOOP(index, n) {
        const int pw = index % out_w, ph = (index / out_w) % out_h;
        const int plane = index / (out_w * out_h);
        int hstart = ph * stride_h - pad_h, wstart = pw * stride_w - pad_w;
        const int hend = min(hstart + kernel_h, height), wend = min(wstart + kernel_w, width);
        hstart = max(hstart, 0);
        wstart = max(wstart, 0);
        REAL best = -REAL_MAX;
        int argmax = -1;
        GLOBAL const REAL *slice = bottom + plane * height * width;
        for (int h = hstart; h < hend; ++h)
            for (int w = wstart; w < wend; ++w)
                if (slice[h * width + w] > best) {
                    argmax = h * width + w;
                    best = slice[argmax];
                }
        top[index] = best;
        mask[index] = argmax;
    }
}

KERNEL ave_pool_forward(const int n, const int channels, const int height, const int width,
                        const int out_h, const int out_w, const int kernel_h, const int kernel_w,
                        const int stride_h, const int stride_w, const int pad_h, const int pad_w,
                        ARRAY(const REAL, bottom), ARRAY(REAL, top))
{
    OFFSET(bottom); OFFSET(top);
    KERNEL_LOOP(index, n) {
        const int pw = index % out_w, ph = (index / out_w) % out_h;
        const int plane = index / (out_w * out_h);
        int hstart = ph * stride_h - pad_h, wstart = pw * stride_w - pad_w;
        int hend = min(hstart + kernel_h, height + pad_h), wend = min(wstart + kernel_w, width + pad_w);
        const int pool_size = (hend - hstart) * (wend - wstart);
        hstart = max(hstart, 0);
        wstart = max(wstart, 0);
        hend = min(hend, height);
        wend = min(wend, width);
        REAL total = 0;
        GLOBAL const REAL *slice = bottom + plane * height * width;
        for (int h = hstart; h < hend; ++h)
            for (int w = wstart; w < wend; ++w)
                total += slice[h * width + w];
        top[index] = total / pool_size;
    }
}

KERNEL stochastic_pool_forward_train(const int n, const int channels, const int height,
                                     const int width, const int out_h, const int out_w,
                                     const int kernel_h, const int kernel_w, const int stride_h,
                                     const int stride_w, ARRAY(const REAL, bottom),
                                     ARRAY(const REAL, uniforms), ARRAY(REAL, top), ARRAY(int, mask))
{
    OFFSET(bottom); OFFSET(uniforms); OFFSET(top); OFFSET(mask);
    KERNEL_LOOP(index, n) {
        const int pw = index % out_w, ph = (index / out_w) % out_h;
        const int plane = index / (out_w * out_h);
        const int hstart = ph * stride_h, hend = min(hstart + kernel_h, height);
        const int wstart = pw * stride_w, wend = min(wstart + kernel_w, width);
        GLOBAL const REAL *slice = bottom + plane * height * width;
        REAL total = 0;
        for (int h = hstart; h < hend; ++h)
            for (int w = wstart; w < wend; ++w)
                total += slice[h * width + w];
        const REAL threshold = ((REAL)1 - uniforms[index]) * total;
        int chosen = (hend > hstart && wend > wstart) ? (hend - 1) * width + wend - 1 : -1;
        REAL running = 0;
        int found = 0;
        for (int h = hstart; h < hend && !found; ++h)
            for (int w = wstart; w < wend; ++w) {
                running += slice[h * width + w];
                if (running >= threshold) {
                    chosen = h * width + w;
                    found = 1;
                    break;
                }
            }
        mask[index] = chosen;
        top[index] = chosen >= 0 ? slice[chosen] : (REAL)0;
    }
}

KERNEL stochastic_pool_forward_test(const int n, const int channels, const int height,
                                    const int width, const int out_h, const int out_w,
                                    const int kernel_h, const int kernel_w, const int stride_h,
                                    const int stride_w, ARRAY(const REAL, bottom), ARRAY(REAL, top))
{
    OFFSET(bottom); OFFSET(top);
    KERNEL_LOOP(index, n) {
        const int pw = index % out_w, ph = (index / out_w) % out_h;
        const int plane = index / (out_w * out_h);
        const int hstart = ph * stride_h, hend = min(hstart + kernel_h, height);
        const int wstart = pw * stride_w, wend = min(wstart + kernel_w, width);
        GLOBAL const REAL *slice = bottom + plane * height * width;
        REAL total = 0, squares = 0;
        for (int h = hstart; h < hend; ++h)
            for (int w = wstart; w < wend; ++w) {
                const REAL v = slice[h * width + w];
                total += v;
                squares += v * v;
            }
        top[index] = total > 0 ? squares / total : (REAL)0;
    }
}

/* MAX and STOCHASTIC-TRAIN backward: bottom_diff (overwritten) sums the top gradients of the windows
 * whose remembered position is this pixel. `pad` is 0 for STOCHASTIC. */
KERNEL mask_pool_backward(const int n, const int channels, const int height, const int width,
                          const int out_h, const int out_w, const int kernel_h, const int kernel_w,
                          const int stride_h, const int stride_w, const int pad_h, const int pad_w,
                          ARRAY(const REAL, top_diff), ARRAY(const int, mask),
                          ARRAY(REAL, bottom_diff))
{
    OFFSET(top_diff); OFFSET(mask); OFFSET(bottom_diff);
    KERNEL_LOOP(index, n) {
        const int w = index % width, h = (index / width) % height;
        const int plane = index / (width * height);
        const int phstart = (h + pad_h < kernel_h) ? 0 : (h + pad_h - kernel_h) / stride_h + 1;
        const int phend = min((h + pad_h) / stride_h + 1, out_h);
        const int pwstart = (w + pad_w < kernel_w) ? 0 : (w + pad_w - kernel_w) / stride_w + 1;
        const int pwend = min((w + pad_w) / stride_w + 1, out_w);
        const int offset = plane * out_h * out_w, position = h * width + w;
        REAL gradient = 0;
        for (int ph = phstart; ph < phend; ++ph)
            for (int pw = pwstart; pw < pwend; ++pw)
                if (mask[offset + ph * out_w + pw] == position)
                    gradient += top_diff[offset + ph * out_w + pw];
        bottom_diff[index] = gradient;
    }
}

KERNEL ave_pool_backward(const int n, const int channels, const int height, const int width,
                         const int out_h, const int out_w, const int kernel_h, const int kernel_w,
                         const int stride_h, const int stride_w, const int pad_h, const int pad_w,
                         ARRAY(const REAL, top_diff), ARRAY(REAL, bottom_diff))
{
    OFFSET(top_diff); OFFSET(bottom_diff);
    KERNEL_LOOP(index, n) {
        const int w = index % width + pad_w, h = (index / width) % height + pad_h;
        const int plane = index / (width * height);
        const int phstart = (h < kernel_h) ? 0 : (h - kernel_h) / stride_h + 1;
        const int phend = min(h / stride_h + 1, out_h);
        const int pwstart = (w < kernel_w) ? 0 : (w - kernel_w) / stride_w + 1;
        const int pwend = min(w / stride_w + 1, out_w);
        GLOBAL const REAL *slice = top_diff + plane * out_h * out_w;
        REAL gradient = 0;
        for (int ph = phstart; ph < phend; ++ph)
            for (int pw = pwstart; pw < pwend; ++pw) {
                const int hstart = ph * stride_h - pad_h, wstart = pw * stride_w - pad_w;
                const int hend = min(hstart + kernel_h, height + pad_h);
                const int wend = min(wstart + kernel_w, width + pad_w);
                gradient += slice[ph * out_w + pw] / ((hend - hstart) * (wend - wstart));
            }
        bottom_diff[index] = gradient;
    }
}

/* STOCHASTIC-TEST backward, cct's CPU rule: d(sum x^2 / S)/dx = (2x - y)/S for S = sum(x) > 0. */
KERNEL stochastic_pool_backward_test(const int n, const int channels, const int height,
                                     const int width, const int out_h, const int out_w,
                                     const int kernel_h, const int kernel_w, const int stride_h,
                                     const int stride_w, ARRAY(const REAL, bottom),
                                     ARRAY(const REAL, top), ARRAY(const REAL, top_diff),
                                     ARRAY(REAL, bottom_diff))
{
    OFFSET(bottom); OFFSET(top); OFFSET(top_diff); OFFSET(bottom_diff);
    KERNEL_LOOP(index, n) {
        const int w = index % width, h = (index / width) % height;
        const int plane = index / (width * height);
        const int phstart = (h < kernel_h) ? 0 : (h - kernel_h) / stride_h + 1;
        const int phend = min(h / stride_h + 1, out_h);
        const int pwstart = (w < kernel_w) ? 0 : (w - kernel_w) / stride_w + 1;
        const int pwend = min(w / stride_w + 1, out_w);
        GLOBAL const REAL *slice = bottom + plane * height * width;
        const int offset = plane * out_h * out_w;
        REAL gradient = 0;
        for (int ph = phstart; ph < phend; ++ph)
            for (int pw = pwstart; pw < pwend; ++pw) {
                const int hstart = ph * stride_h, hend = min(hstart + kernel_h, height);
                const int wstart = pw * stride_w, wend = min(wstart + kernel_w, width);
                REAL total = 0;
                for (int hh = hstart; hh < hend; ++hh)
                    for (int ww = wstart; ww < wend; ++ww)
                        total += slice[hh * width + ww];
                if (total > 0)
                    gradient += top_diff[offset + ph * out_w + pw] / total
                        * ((REAL)2 * slice[h * width + w] - top[offset + ph * out_w + pw]);
            }
        bottom_diff[index] = gradient;
    }
}

/* The argmax as pycaffe's second top sees it: a float index, -1 for an empty window. */
KERNEL mask_to_real(const int n, ARRAY(const int, mask), ARRAY(REAL, out))
{
    OFFSET(mask); OFFSET(out);
    KERNEL_LOOP(i, n) out[i] = (REAL)mask[i];
}
