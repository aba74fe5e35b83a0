"""The CPU device's BatchNorm primitives (batch_norm_statistics, batch_norm_forward,
batch_norm_backward): cct/kernels/channel.pyx's multi-core passes, None arguments passed as empty
arrays."""
import numpy as np

from cct.kernels import channel

_NONE = {}


def none_array(dtype):
    """The empty array of ``dtype`` the kernels take for an absent optional argument."""
    none = _NONE.get(dtype)
    if none is None:
        none = _NONE[dtype] = np.empty(0, dtype)
    return none


class NormMixin:
    """BatchNorm, and a Scale fused into it, on host arrays."""

    def batch_norm_statistics(self, x, mean, variance, inner):
        channel.batch_norm_statistics(x.reshape(-1), mean.reshape(-1), variance.reshape(-1),
                                      inner)

    def batch_norm_forward(self, x, mean, std, out, inner, scale=None, bias=None,
                           normalised=None):
        none = none_array(out.dtype)
        channel.batch_norm_forward(x.reshape(-1), mean.reshape(-1), std.reshape(-1),
                                   none if scale is None else scale.reshape(-1),
                                   none if bias is None else bias.reshape(-1), out.reshape(-1),
                                   none if normalised is None else normalised.reshape(-1), inner)

    def batch_norm_backward(self, top_diff, source, mean, std, sums, inner, recompute=False,
                            scale=None, scaled_diff=None, bottom_diff=None, global_stats=False):
        none = none_array(top_diff.dtype)
        channel.batch_norm_backward(
            top_diff.reshape(-1), source.reshape(-1), mean.reshape(-1), std.reshape(-1),
            none if scale is None else scale.reshape(-1),
            none if scaled_diff is None else scaled_diff.reshape(-1),
            none if bottom_diff is None else bottom_diff.reshape(-1), sums.reshape(-1), inner,
            recompute, global_stats)
