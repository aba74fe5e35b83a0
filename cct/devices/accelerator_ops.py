"""The accelerators' GEMM, convolution, pooling and LRN primitives (a mixin of AcceleratorDevice).

Convolution is lowered Caffe con Troll's way: a *partition* of the batch is lowered into one column
buffer (lowering.cl), and each group takes one batched GEMM launch over the whole partition. The
partition is the most images whose columns fit ``COLUMN_BUDGET`` bytes (at least one image), chosen
once in ``conv_plan``.
"""
import numpy as np

from cct.devices.plans import ConvPlan, LRNPlan, PoolPlan
from cct.errors import DeviceError

# Bytes one partition's column buffer may take (the lowered images of one GEMM launch per group).
COLUMN_BUDGET = 64 * 2 ** 20
# A single product with fewer output tiles than SPLIT_TILES_PER_UNIT per compute unit is split along
# k into at most MAX_SPLITS slices of at least SPLIT_MIN_DEPTH, multiplied in one batched launch and
# summed: weight gradients (a few channels by a few taps, k = the partition's pixels) would otherwise
# run on a handful of work-groups, one core of PoCL or a few SMs of a GPU.
SPLIT_TILES_PER_UNIT, SPLIT_MIN_DEPTH, MAX_SPLITS = 4, 256, 64


def _i(value):
    return np.int32(value)


class AcceleratorConvPlan(ConvPlan):
    """A ConvPlan with ``partition``: the images one column buffer holds."""


class OpsMixin:
    """gemm, conv_*, im2col/col2im, pool_* and lrn_* on the device's kernels; needs
    AcceleratorDevice's helpers."""

    def gemm(self, a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
        m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
        n = b.shape[0] if trans_b else b.shape[1]
        if (b.shape[1] if trans_b else b.shape[0]) != k or out.shape != (m, n):
            raise DeviceError('gemm: op(a) %dx%d, op(b) %s and out %s do not fit'
                              % (m, k, b.shape[::-1] if trans_b else b.shape, out.shape))
        self.gemm_strided(m, n, k, alpha, a, 0, a.shape[1], trans_a, 0, b, 0, b.shape[1], trans_b,
                          0, beta, out, 0, n, 0, 1)

    def gemm_strided(self, m, n, k, alpha, a, offset_a, lda, trans_a, stride_a, b, offset_b, ldb,
                     trans_b, stride_b, beta, c, offset_c, ldc, stride_c, batch):
        """``batch`` products C_p = alpha*op(A_p) op(B_p) + beta*C_p, each operand at its array's
        offset + offset_x + p*stride_x (elements), row-major with leading dimension ldx."""
        if m == 0 or n == 0 or batch == 0:
            return
        splits = self._k_splits(m, n, k) if batch == 1 else 1
        if splits > 1:
            self._gemm_split(splits, m, n, k, alpha, a, offset_a, lda, trans_a, b, offset_b, ldb,
                             trans_b, beta, c, offset_c, ldc)
        else:
            self._gemm_launch(m, n, k, alpha, a, offset_a, lda, trans_a, stride_a, b, offset_b,
                              ldb, trans_b, stride_b, beta, c, offset_c, ldc, stride_c, batch)

    def _gemm_launch(self, m, n, k, alpha, a, offset_a, lda, trans_a, stride_a, b, offset_b, ldb,
                     trans_b, stride_b, beta, c, offset_c, ldc, stride_c, batch):
        dtype = c.dtype
        real = dtype.type
        buffer_a, base_a = self.arg(a)
        buffer_b, base_b = self.arg(b)
        buffer_c, base_c = self.arg(c)
        self.runtime.launch_gemm(
            dtype, m, n, batch, _i(m), _i(n), _i(k), real(alpha),
            buffer_a, _i(base_a + offset_a), _i(lda), _i(bool(trans_a)), _i(stride_a),
            buffer_b, _i(base_b + offset_b), _i(ldb), _i(bool(trans_b)), _i(stride_b),
            real(beta), buffer_c, _i(base_c + offset_c), _i(ldc), _i(stride_c))

    def _k_splits(self, m, n, k):
        from cct.kernels.gpu.launch import GEMM_GEOMETRY
        _, (tile_m, tile_n) = GEMM_GEOMETRY[self.runtime.gemm_kernel]
        tiles = -(-m // tile_m) * -(-n // tile_n)
        wanted = SPLIT_TILES_PER_UNIT * self.runtime.compute_units
        if tiles >= wanted:
            return 1
        return max(1, min(-(-wanted // tiles), k // SPLIT_MIN_DEPTH, MAX_SPLITS))

    def _gemm_split(self, splits, m, n, k, alpha, a, offset_a, lda, trans_a, b, offset_b, ldb,
                    trans_b, beta, c, offset_c, ldc):
        """One product as ``splits`` products over slices of k into scratch, then summed into C."""
        chunk = -(-k // splits)
        full, rest = divmod(k, chunk)
        partials = self.scratch('gemm_partials', (full + (rest > 0), m, n), c.dtype)
        step_a = chunk * (lda if trans_a else 1)
        step_b = chunk * (1 if trans_b else ldb)
        # Launched directly: a slice split again would reuse this scratch under its own partials.
        self._gemm_launch(m, n, chunk, 1.0, a, offset_a, lda, trans_a, step_a, b, offset_b, ldb,
                          trans_b, step_b, 0.0, partials, 0, n, m * n, full)
        if rest:
            self._gemm_launch(m, n, rest, 1.0, a, offset_a + full * step_a, lda, trans_a, 0, b,
                              offset_b + full * step_b, ldb, trans_b, 0, 0.0, partials,
                              full * m * n, n, 0, 1)
        buffer, base = self.arg(c)
        self._run('reduction', 'combine_partials', c.dtype, m * n, _i(full + (rest > 0)),
                  _i(m), _i(n), *self.arg(partials), c.dtype.type(alpha), c.dtype.type(beta),
                  buffer, _i(base + offset_c), _i(ldc))

    # ---------------------------------------------------------------- convolution
    def conv_plan(self, num, image_channels, image_hw, col_channels, col_hw, group, kernel, pad,
                  stride, dilation, dtype):
        plan = AcceleratorConvPlan(num, image_channels, image_hw, col_channels, col_hw, group,
                                   kernel, pad, stride, dilation, dtype)
        if image_channels % group or col_channels % group:
            raise DeviceError('convolution: %d image channels and %d column channels are not '
                              'divisible by group %d' % (image_channels, col_channels, group))
        per_image = plan.col_rows * plan.col_pixels * plan.dtype.itemsize
        budget = min(COLUMN_BUDGET, self.runtime.max_alloc)
        plan.partition = int(max(1, min(num, budget // max(per_image, 1))))
        self.runtime.check_alloc(per_image * plan.partition, 'a convolution column buffer')
        return plan

    def _columns(self, plan, count):
        return self.scratch('conv_columns', (plan.col_rows, count * plan.col_pixels), plan.dtype)

    def _lower(self, plan, images, first, count, col, inverse=False):
        """im2col (or col2im) of images [first, first + count) of ``images`` to/from ``col``."""
        (kh, kw), (ph, pw), (sh, sw) = plan.kernel, plan.pad, plan.stride
        (dh, dw), (oh, ow) = plan.dilation, plan.col_hw
        height, width = plan.image_hw
        image_size = plan.image_channels * height * width
        buffer, base = self.arg(images)
        image_arg = (buffer, _i(base + first * image_size))
        geometry = tuple(_i(v) for v in (count, plan.image_channels, height, width, kh, kw, ph, pw,
                                         sh, sw, dh, dw, oh, ow))
        if inverse:
            self._run('lowering', 'col2im_batch', plan.dtype, count * image_size, *geometry,
                      *self.arg(col), *image_arg)
        else:
            self._run('lowering', 'im2col_batch', plan.dtype,
                      count * plan.image_channels * plan.col_pixels, *geometry, *image_arg,
                      *self.arg(col))

    def _partitions(self, plan, num):
        for first in range(0, num, plan.partition):
            yield first, min(plan.partition, num - first)

    def conv_forward(self, plan, images, weights, bias, out):
        num, groups = images.shape[0], plan.group
        rows_g, channels_g = plan.col_rows // groups, plan.col_channels // groups
        pixels = plan.col_pixels
        for first, count in self._partitions(plan, num):
            col = self._columns(plan, count)
            self._lower(plan, images, first, count, col)
            for g in range(groups):
                # out[first + p, g-block] = weights[g] @ col[g-rows, p-columns], p over the partition
                self.gemm_strided(channels_g, pixels, rows_g, 1.0,
                                  weights, g * channels_g * rows_g, rows_g, False, 0,
                                  col, g * rows_g * count * pixels, count * pixels, False, pixels,
                                  0.0, out, (first * plan.col_channels + g * channels_g) * pixels,
                                  pixels, plan.col_channels * pixels, count)
        if bias is not None:
            self.add_bias(out, bias, pixels)

    def conv_backward_data(self, plan, rows, weights, bias, images):
        num, groups = images.shape[0], plan.group
        rows_g, channels_g = plan.col_rows // groups, plan.col_channels // groups
        pixels = plan.col_pixels
        for first, count in self._partitions(plan, num):
            col = self._columns(plan, count)
            for g in range(groups):
                # col[g-rows, p-columns] = weights[g]^T @ rows[first + p, g-block]
                self.gemm_strided(rows_g, pixels, channels_g, 1.0,
                                  weights, g * channels_g * rows_g, rows_g, True, 0,
                                  rows, (first * plan.col_channels + g * channels_g) * pixels,
                                  pixels, False, plan.col_channels * pixels,
                                  0.0, col, g * rows_g * count * pixels, count * pixels, pixels,
                                  count)
            self._lower(plan, images, first, count, col, inverse=True)
        if bias is not None:
            self.add_bias(images, bias, plan.image_hw[0] * plan.image_hw[1])

    def conv_backward_weights(self, plan, images, rows, weight_diff, bias_diff):
        num, groups = images.shape[0], plan.group
        rows_g, channels_g = plan.col_rows // groups, plan.col_channels // groups
        pixels = plan.col_pixels
        if weight_diff is not None:
            for first, count in self._partitions(plan, num):
                col = self._columns(plan, count)
                self._lower(plan, images, first, count, col)
                packed = self.scratch('conv_packed_rows', (plan.col_channels, count * pixels),
                                      plan.dtype)
                buffer, base = self.arg(rows)
                self._run('lowering', 'pack_rows', plan.dtype, packed.size, _i(count),
                          _i(plan.col_channels), _i(pixels), buffer,
                          _i(base + first * plan.col_channels * pixels), *self.arg(packed))
                for g in range(groups):
                    # weight_diff[g] += packed[g-block] @ col[g-rows]^T over the partition's columns
                    self.gemm_strided(channels_g, rows_g, count * pixels, 1.0,
                                      packed, g * channels_g * count * pixels, count * pixels,
                                      False, 0,
                                      col, g * rows_g * count * pixels, count * pixels, True, 0,
                                      1.0, weight_diff, g * channels_g * rows_g, rows_g, 0, 1)
        if bias_diff is not None:
            self.channel_sum(rows, bias_diff, pixels, accumulate=True)

    def im2col(self, plan, images, col):
        self._lower(plan, images, 0, images.shape[0], col)

    def col2im(self, plan, col, images):
        self._lower(plan, images, 0, images.shape[0], col, inverse=True)

    # ---------------------------------------------------------------- pooling
    def pool_plan(self, method, kernel, pad, stride, bottom_shape, top_shape, dtype):
        plan = PoolPlan(method, kernel, pad, stride, bottom_shape, top_shape, dtype)
        if method not in ('max', 'ave', 'stochastic_train', 'stochastic_test'):
            raise DeviceError('unknown pooling method %r' % method)
        if method.startswith('stochastic') and any(plan.pad):
            raise DeviceError('STOCHASTIC pooling takes no padding (pad %s)' % (plan.pad,))
        if method in ('max', 'stochastic_train'):
            plan.mask = self.empty(top_shape, np.int32, 'a pooling argmax mask')
        if method == 'stochastic_train':
            plan.uniforms = self.empty(top_shape, dtype, 'stochastic pooling draws')
        return plan

    def _pool_geometry(self, plan, padded=True):
        n, channels, height, width = plan.bottom_shape
        out_h, out_w = plan.top_shape[2:]
        values = [channels, height, width, out_h, out_w, *plan.kernel, *plan.stride]
        if padded:
            values += list(plan.pad)
        return tuple(_i(v) for v in values)

    def pool_forward(self, plan, bottom, top):
        count = top.size
        if plan.method == 'max':
            self._run('pooling', 'max_pool_forward', plan.dtype, count, _i(count),
                      *self._pool_geometry(plan), *self.arg(bottom), *self.arg(top),
                      *self.arg(plan.mask))
        elif plan.method == 'ave':
            self._run('pooling', 'ave_pool_forward', plan.dtype, count, _i(count),
                      *self._pool_geometry(plan), *self.arg(bottom), *self.arg(top))
        elif plan.method == 'stochastic_train':
            self.rng_uniform(plan.uniforms, 0.0, 1.0)
            self._run('pooling', 'stochastic_pool_forward_train', plan.dtype, count, _i(count),
                      *self._pool_geometry(plan, False), *self.arg(bottom),
                      *self.arg(plan.uniforms), *self.arg(top), *self.arg(plan.mask))
        else:
            self._run('pooling', 'stochastic_pool_forward_test', plan.dtype, count, _i(count),
                      *self._pool_geometry(plan, False), *self.arg(bottom), *self.arg(top))

    def pool_argmax(self, plan, out):
        self._run('pooling', 'mask_to_real', out.dtype, out.size, _i(out.size),
                  *self.arg(plan.mask), *self.arg(out))

    def pool_backward(self, plan, top_diff, bottom_diff, bottom=None, top=None):
        count = bottom_diff.size
        if plan.method in ('max', 'stochastic_train'):
            self._run('pooling', 'mask_pool_backward', plan.dtype, count, _i(count),
                      *self._pool_geometry(plan), *self.arg(top_diff), *self.arg(plan.mask),
                      *self.arg(bottom_diff))
        elif plan.method == 'ave':
            self._run('pooling', 'ave_pool_backward', plan.dtype, count, _i(count),
                      *self._pool_geometry(plan), *self.arg(top_diff), *self.arg(bottom_diff))
        else:
            if bottom is None or top is None:
                raise DeviceError('STOCHASTIC pooling backward in TEST needs bottom and top data')
            self._run('pooling', 'stochastic_pool_backward_test', plan.dtype, count, _i(count),
                      *self._pool_geometry(plan, False), *self.arg(bottom), *self.arg(top),
                      *self.arg(top_diff), *self.arg(bottom_diff))

    # ---------------------------------------------------------------- LRN
    def lrn_plan(self, region, size, alpha, beta, k, shape, dtype):
        plan = LRNPlan(region, size, alpha, beta, k, shape, dtype)
        if region not in ('across', 'within'):
            raise DeviceError('unknown LRN region %r' % region)
        plan.scale = self.empty(shape, dtype, 'the LRN scale')
        return plan

    def _lrn_constants(self, plan):
        real = plan.dtype.type
        window = plan.size * plan.size if plan.region == 'within' else plan.size
        a = real(plan.alpha / window)
        k = real(1) if plan.region == 'within' else real(plan.k)
        ratio = real(2.0 * plan.alpha * plan.beta / window)
        return a, k, ratio

    def lrn_forward(self, plan, bottom, top):
        n, channels, height, width = plan.shape
        a, k, _ = self._lrn_constants(plan)
        self._run('lrn', 'lrn_scale', plan.dtype, bottom.size, _i(bottom.size), _i(channels),
                  _i(height), _i(width), _i(plan.size), _i(plan.region == 'within'), a, k,
                  *self.arg(bottom), *self.arg(plan.scale))
        self._run('lrn', 'lrn_output', plan.dtype, bottom.size, _i(bottom.size), *self.arg(bottom),
                  *self.arg(plan.scale), plan.dtype.type(-plan.beta), *self.arg(top))

    def lrn_backward(self, plan, bottom, top, top_diff, bottom_diff):
        n, channels, height, width = plan.shape
        _, _, ratio = self._lrn_constants(plan)
        self._run('lrn', 'lrn_backward', plan.dtype, bottom.size, _i(bottom.size), _i(channels),
                  _i(height), _i(width), _i(plan.size), _i(plan.region == 'within'),
                  plan.dtype.type(-plan.beta), ratio, *self.arg(bottom), *self.arg(top),
                  *self.arg(plan.scale), *self.arg(top_diff), *self.arg(bottom_diff))
