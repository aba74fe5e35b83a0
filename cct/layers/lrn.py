"""LRN, local response normalization (Caffe's lrn_layer.cpp), on 4-D (N, C, H, W) blobs.

The rules that are easy to get wrong, all Caffe's:

* ACROSS_CHANNELS: ``scale = k + alpha/local_size * sum(x**2)`` over the ``local_size`` channels
  centred on c (zero beyond the edges): alpha is divided by the window size.
* WITHIN_CHANNEL: Caffe composes it from Split, Power, AVE Pooling (pad ``(local_size-1)/2``) and
  Eltwise, so ``scale = 1 + alpha * mean(x**2)`` over the local_size x local_size window *counting
  the zero padding* (always local_size**2 cells), and ``k`` is ignored (the shift is fixed at 1).
* ``y = x * scale**-beta``; local_size must be odd.

In-place LRN is refused: Caffe's CPU forward overwrites the input with ``scale**-beta`` before
multiplying by it, so an in-place LRN there silently computes the wrong thing.
"""
import numpy as np

from cct import kernels, workspace
from cct.kernels import lrn as lrn_kernels
from cct.layers.base import Layer, register
from cct.layers.geometry import check_int_fields
from cct.proto import caffe_pb2

ACROSS_CHANNELS = caffe_pb2.LRNParameter.ACROSS_CHANNELS
WITHIN_CHANNEL = caffe_pb2.LRNParameter.WITHIN_CHANNEL


@register('LRN')
class LRNLayer(Layer):
    num_bottom = 1
    num_top = 1
    inplace = False

    def setup(self, bottom, top):
        p = self.param.lrn_param
        if p.local_size % 2 != 1:
            self.fail('LRN only supports odd values for local_size (got %d)' % p.local_size)
        check_int_fields(self.describe(), (('local_size', (p.local_size,)),))
        self.size = p.local_size
        # Caffe keeps these as Dtype members: float32 nets compute with float32 constants.
        as_dtype = self.dtype.type
        self.alpha, self.beta, self.k = (float(as_dtype(v)) for v in (p.alpha, p.beta, p.k))
        self.region = p.norm_region
        if self.region not in (ACROSS_CHANNELS, WITHIN_CHANNEL):
            self.fail('unknown normalization region %d' % self.region)

    def reshape(self, bottom, top):
        if bottom[0].ndim != 4:
            self.fail('input must have 4 axes, corresponding to (num, channels, height, width); '
                      'got shape %s' % (bottom[0].shape,))
        top[0].reshape(bottom[0].shape)
        # ACROSS_CHANNELS keeps each block's scale in per-thread scratch only; WITHIN_CHANNEL
        # keeps the scale and its power.
        if self.region == WITHIN_CHANNEL and (getattr(self, 'scale', None) is None or
                                              self.scale.shape != bottom[0].shape):
            self.scale = np.empty(bottom[0].shape, self.dtype)
            self.factor = np.empty(bottom[0].shape, self.dtype)  # scale**-beta

    def _planes(self, array):
        return array.reshape(array.shape[0], array.shape[1], -1)

    def forward(self, bottom, top):
        x = bottom[0].data
        if self.region == ACROSS_CHANNELS:
            lrn_kernels.cross_channel_forward(self._planes(x), self._planes(top[0].data),
                                              self.size, self.alpha / self.size, self.k,
                                              self.beta, self._block_scratch(x))
            return
        rows = workspace.scratch('lrn_rows', x.shape, self.dtype)
        lrn_kernels.within_channel_scale(x, rows, self.scale, self.size,
                                         self.alpha / (self.size * self.size))
        lrn_kernels.apply_scale(x.reshape(-1), self.scale.reshape(-1), top[0].data.reshape(-1),
                                self.factor.reshape(-1), self.beta)

    def _block_scratch(self, x):
        return workspace.scratch('lrn_blocks', (kernels.max_threads(),
                                                lrn_kernels.block_scratch_size(x.shape[1])),
                                 self.dtype)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, y, dy, dx = bottom[0].data, top[0].data, top[0].diff, bottom[0].diff
        if self.region == ACROSS_CHANNELS:
            lrn_kernels.cross_channel_backward(
                self._planes(x), self._planes(y), self._planes(dy), self._planes(dx), self.size,
                self.alpha / self.size, self.k, self.beta,
                2.0 * self.alpha * self.beta / self.size, self._block_scratch(x))
        else:
            ratios = workspace.scratch('lrn_ratios', x.shape, self.dtype)
            rows = workspace.scratch('lrn_rows', x.shape, self.dtype)
            lrn_kernels.within_channel_backward(
                x, y, self.scale, self.factor, dy, ratios, rows, dx, self.size,
                2.0 * self.alpha * self.beta / (self.size * self.size))
