"""BatchNorm's primitives (batch_norm_statistics, batch_norm_forward, batch_norm_backward) composed
of the catalogue's others, as a mixin for devices without kernels of their own for them (OpenCL):
the same operations the layers called before the CPU fused them, so an accelerator runs BatchNorm
and a fused Scale with the passes it already has.
"""


class ComposedNormMixin:
    """The three primitives through channel_sum, channel_op, mul, scale, axpby, copy, scratch."""

    def batch_norm_statistics(self, x, mean, variance, inner):
        count = x.size // max(mean.size, 1)
        self.channel_sum(x, mean, inner, accumulate=False, wide=False)
        self.scale(mean, 1.0 / count if count else 0.0, mean)
        centred = self.scratch('batch_norm_centred', x.shape, x.dtype)
        self.channel_op('sub', x, mean, centred, inner)
        self.mul(centred, centred, centred)
        self.channel_sum(centred, variance, inner, accumulate=False, wide=False)
        self.scale(variance, 1.0 / count if count else 0.0, variance)

    def batch_norm_forward(self, x, mean, std, out, inner, scale=None, bias=None,
                           normalised=None):
        self.channel_op('sub', x, mean, out, inner)
        self.channel_op('div', out, std, out, inner)
        if normalised is not None:
            self.copy(out, normalised)
        if scale is not None:
            self.channel_op('mul', out, scale, out, inner)
        if bias is not None:
            self.channel_op('add', out, bias, out, inner)

    def batch_norm_backward(self, top_diff, source, mean, std, sums, inner, recompute=False,
                            scale=None, scaled_diff=None, bottom_diff=None, global_stats=False):
        channels = mean.size
        sums = sums.reshape(-1)
        part = [sums[k * channels:(k + 1) * channels] for k in range(4)]
        normalised = source
        if recompute:
            normalised = self.scratch('batch_norm_normalised', source.shape, source.dtype)
            self.channel_op('sub', source, mean, normalised, inner)
            self.channel_op('div', normalised, std, normalised, inner)
        work = self.scratch('batch_norm_work', top_diff.shape, top_diff.dtype)
        self.channel_sum(top_diff, part[0], inner, accumulate=False, wide=False)
        self.mul(top_diff, normalised, work)
        self.channel_sum(work, part[1], inner, accumulate=False, wide=False)
        dy = top_diff
        if scale is not None:
            dy = scaled_diff if scaled_diff is not None else \
                self.scratch('batch_norm_scaled', top_diff.shape, top_diff.dtype)
            self.channel_op('mul', top_diff, scale, dy, inner)
        elif scaled_diff is not None and scaled_diff is not top_diff:
            self.copy(top_diff, scaled_diff)
        self.channel_sum(dy, part[2], inner, accumulate=False, wide=False)
        self.mul(dy, normalised, work)
        self.channel_sum(work, part[3], inner, accumulate=False, wide=False)
        if bottom_diff is None:
            return
        if global_stats:
            self.channel_op('div', dy, std, bottom_diff, inner)
            return
        self.channel_op('mul', normalised, part[3], work, inner)
        self.channel_op('add', work, part[2], work, inner)
        self.scale(work, -1.0 / (top_diff.size // channels), work)
        self.axpby(1.0, dy, 1.0, work)
        self.copy(work, bottom_diff)
        self.channel_op('div', bottom_diff, std, bottom_diff, inner)
