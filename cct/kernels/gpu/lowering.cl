/* The convolution lowering for a partition of the batch (Caffe con Troll): im2col of `count` images
 * into one column buffer, its inverse col2im, and the packing of the column-side gradient the weight
 * gradient multiplies by. Caffe's im2col.cu with pad, stride, dilation; groups are row blocks.
 *
 * Column layout (devices/base.py im2col): row (c*kh + i)*kw + j, column p*out_h*out_w + pixel for image
 * p of the partition, so group g's rows are one contiguous block and one GEMM launch per group covers
 * the whole partition.
 */
KERNEL im2col_batch(const int count, const int channels, const int height, const int width,
                    const int kernel_h, const int kernel_w, const int pad_h, const int pad_w,
                    const int stride_h, const int stride_w, const int dilation_h,
                    const int dilation_w, const int out_h, const int out_w,
                    ARRAY(const REAL, images), ARRAY(REAL, col))
{
    OFFSET(images); OFFSET(col);
    const int pixels = out_h * out_w, columns = count * pixels;
    /* One work-item per (image, channel, output pixel) writes that pixel's kh*kw taps, as Caffe's
     * im2col_gpu_kernel does: the index arithmetic is paid once per kernel window, and neighbouring
     * work-items write neighbouring columns. */
    KERNEL_LOOP(index, count * channels * pixels) {
        const int pixel = index % pixels, c = (index / pixels) % channels;
        const int image = index / (pixels * channels);
        const int h0 = (pixel / out_w) * stride_h - pad_h, w0 = (pixel % out_w) * stride_w - pad_w;
        GLOBAL const REAL *plane = images + (image * channels + c) * height * width;
        GLOBAL REAL *out = col + (c * kernel_h * kernel_w) * columns + image * pixels + pixel;
        for (int i = 0; i < kernel_h; ++i) {
            const int h = h0 + i * dilation_h;
            for (int j = 0; j < kernel_w; ++j) {
                const int w = w0 + j * dilation_w;
                *out = (h >= 0 && h < height && w >= 0 && w < width) ? plane[h * width + w] : (REAL)0;
                out += columns;
            }
        }
    }
}

/* images (overwritten) = the sum of every column entry that im2col_batch read from each pixel:
 * Caffe's col2im_gpu_kernel, gathering per image pixel (no atomics), with the partition's columns. */
KERNEL col2im_batch(const int count, const int channels, const int height, const int width,
                    const int kernel_h, const int kernel_w, const int pad_h, const int pad_w,
                    const int stride_h, const int stride_w, const int dilation_h,
                    const int dilation_w, const int out_h, const int out_w,
                    ARRAY(const REAL, col), ARRAY(REAL, images))
{
    OFFSET(col); OFFSET(images);
    const int pixels = out_h * out_w, columns = count * pixels;
    const int extent_w = (kernel_w - 1) * dilation_w + 1;
    const int extent_h = (kernel_h - 1) * dilation_h + 1;
    KERNEL_LOOP(index, count * channels * height * width) {
        const int w_im = index % width + pad_w;
        const int h_im = (index / width) % height + pad_h;
        const int c = (index / (width * height)) % channels;
        const int image = index / (width * height * channels);
        const int w_col_start = w_im < extent_w ? 0 : (w_im - extent_w) / stride_w + 1;
        const int w_col_end = min(w_im / stride_w + 1, out_w);
        const int h_col_start = h_im < extent_h ? 0 : (h_im - extent_h) / stride_h + 1;
        const int h_col_end = min(h_im / stride_h + 1, out_h);
        REAL value = 0;
        for (int h_col = h_col_start; h_col < h_col_end; ++h_col) {
            for (int w_col = w_col_start; w_col < w_col_end; ++w_col) {
                int h_k = h_im - h_col * stride_h;
                int w_k = w_im - w_col * stride_w;
                if (h_k % dilation_h == 0 && w_k % dilation_w == 0) {
                    h_k /= dilation_h;
                    w_k /= dilation_w;
                    const int row = (c * kernel_h + h_k) * kernel_w + w_k;
                    value += col[row * columns + image * pixels + h_col * out_w + w_col];
                }
            }
        }
        images[index] = value;
    }
}

/* packed[c, p*pixels + s] = rows[p, c, s]: the partition's column-side gradient as one matrix, so the
 * weight gradient of a group is one GEMM over the whole partition. */
KERNEL pack_rows(const int count, const int channels, const int pixels, ARRAY(const REAL, rows),
                 ARRAY(REAL, packed))
{
    OFFSET(rows); OFFSET(packed);
    const int columns = count * pixels;
    KERNEL_LOOP(index, channels * columns) {
        const int c = index / columns, column = index % columns;
        packed[index] = rows[((column / pixels) * channels + c) * pixels + column % pixels];
    }
}
