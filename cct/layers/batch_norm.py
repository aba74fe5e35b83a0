"""BatchNorm (Caffe's batch_norm_layer.cpp): y = (x − mean) / sqrt(var + eps) per channel (axis 1),
the statistics taken over the batch and every axis after the channels.

Rules that are easy to get wrong:
* There is no learned scale or shift: nets follow BatchNorm with a Scale layer (bias_term: true).
* The three param blobs are statistics, not weights: [0] a running sum of means, [1] a running sum
  of variances (both (channels,)), [2] their normaliser s (1 element). The layer gives each a
  ParamSpec with lr_mult 0 when the prototxt has none; a non-zero lr_mult is an error.
* use_global_stats defaults to false in TRAIN and true in TEST. With global statistics,
  mean = blob0 / s and var = blob1 / s, and s == 0 means both are 0 (not a division by zero).
* In TRAIN every forward updates s ← λ·s + 1, blob0 ← mean + λ·blob0 and
  blob1 ← m/(m−1)·var + λ·blob1 (λ = moving_average_fraction, m = values per channel): the
  normalisation uses the biased batch variance, the running sum the unbiased one.
* The backward in TRAIN differentiates through the batch statistics; with global statistics it is
  dy / sqrt(var + eps).
* With the batch split across devices (cct.parallel) the statistics are the whole batch's: the
  per-channel sums are added over the shares (three synchronisations forward, one backward).
* Caffe's LayerSetUp takes 1 channel for a 1-axis bottom but then fails in Reshape; cct accepts it.
"""
import numpy as np

from cct.layers.base import Layer, register
from cct.proto import caffe_pb2


@register('BatchNorm')
class BatchNormLayer(Layer):
    num_bottom = 1
    num_top = 1
    primitives = ('channel_op', 'channel_sum', 'mul', 'scale', 'axpby', 'copy', 'to_host',
                  'from_host', 'scratch', 'empty')

    def setup(self, bottom, top):
        param = self.param.batch_norm_param
        dtype = self.dtype.type
        self.moving_average_fraction = dtype(param.moving_average_fraction)
        self.use_global_stats = self.phase == caffe_pb2.TEST
        if param.HasField('use_global_stats'):
            self.use_global_stats = param.use_global_stats
        if bottom[0].ndim < 1:
            self.fail('needs a bottom with at least 1 axis, got a scalar')
        self.channels = 1 if bottom[0].ndim == 1 else bottom[0].shape[1]
        self.eps = dtype(param.eps)
        self.make_param_blobs([((self.channels,), None), ((self.channels,), None), ((1,), None)])
        # Caffe masks the statistics from the solver by giving them lr_mult 0 itself.
        for i in range(len(self.blobs)):
            if len(self.param.param) == i:
                self.param.param.add(lr_mult=0)
            elif self.param.param[i].lr_mult != 0:
                self.fail('Cannot configure batch normalization statistics as layer parameters '
                          '(param %d has lr_mult %g; it must be 0)'
                          % (i, self.param.param[i].lr_mult))
        self.std = np.zeros(self.channels, self.dtype)
        self.x_norm = None

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) >= 2 and shape[1] != self.channels:
            self.fail('bottom has %d channels, the layer was set up for %d'
                      % (shape[1], self.channels))
        top[0].reshape(shape)
        self.num = shape[0]
        self.inner = bottom[0].count // max(self.num * self.channels, 1)
        if self.x_norm is None or self.x_norm.shape != shape:
            # The normalised output is kept because a later in-place layer may overwrite the top.
            self.x_norm = self.device.empty(shape, self.dtype)

    def _channel_sums(self, values, purpose):
        """Per-channel sums of (num, channels, inner) ``values`` in the dtype, on the device."""
        sums = self.device.scratch(purpose, (self.channels,), self.dtype)
        self.device.channel_sum(values, sums, self.inner, accumulate=False, wide=False)
        return sums

    def _whole_batch(self, sums):
        # The shares' per-channel sums added in the dtype, as one device's channel_sum adds.
        return self.whole_batch_sum(sums.astype(self.dtype, copy=False))

    def forward(self, bottom, top):
        device = self.device
        x, y = bottom[0].dev_data, top[0].dev_data
        dtype = self.dtype.type
        if self.use_global_stats:
            normaliser = self.blobs[2].data[0]
            factor = dtype(0) if normaliser == 0 else dtype(1) / normaliser
            mean = factor * self.blobs[0].data
            variance = factor * self.blobs[1].data
        else:
            per_channel = self.batch_count = self.whole_batch_sum(self.num * self.inner)
            # The per-channel statistics are a few values: they are finished on the host.
            mean = self._whole_batch(device.to_host(self._channel_sums(x, 'batch_norm_sums'))) / \
                dtype(per_channel)
        device.channel_op('sub', x, device.from_host(mean), y, self.inner)
        if not self.use_global_stats:
            squares = device.scratch('batch_norm', y.shape, self.dtype)
            device.mul(y, y, squares)
            variance = self._whole_batch(device.to_host(
                self._channel_sums(squares, 'batch_norm_sums'))) / dtype(per_channel)
            fraction = self.moving_average_fraction
            self.blobs[2].data[0] = self.blobs[2].data[0] * fraction + 1
            self.blobs[0].data[...] *= fraction
            self.blobs[0].data[...] += mean
            # The running variance is the unbiased estimate, m/(m-1) times the batch variance.
            count = per_channel
            correction = dtype(count) / dtype(count - 1) if count > 1 else dtype(1)
            self.blobs[1].data[...] *= fraction
            self.blobs[1].data[...] += correction * variance
        np.add(variance, self.eps, out=self.std)
        np.sqrt(self.std, out=self.std)
        self.device_std = device.from_host(self.std)
        device.channel_op('div', y, self.device_std, y, self.inner)
        device.copy(y, self.x_norm)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        device = self.device
        dy, dx = top[0].dev_diff, bottom[0].dev_diff
        if self.use_global_stats:
            device.channel_op('div', dy, self.device_std, dx, self.inner)
            return
        # dx = (dy - mean(dy) - mean(dy*y)*y) / sqrt(var + eps), the means per channel. Both sums
        # are taken before dx is written, since in-place dx is dy.
        y = self.x_norm
        work = device.scratch('batch_norm', y.shape, self.dtype)
        device.mul(y, dy, work)
        sum_dy_y = self._channel_sums(work, 'batch_norm_sums')
        sum_dy = self._channel_sums(dy, 'batch_norm_sums_2')
        if self.share_group is not None:
            both = self._whole_batch(np.concatenate([device.to_host(sum_dy_y),
                                                     device.to_host(sum_dy)]))
            sum_dy_y = device.from_host(both[:self.channels])
            sum_dy = device.from_host(both[self.channels:])
        device.channel_op('mul', y, sum_dy_y, work, self.inner)
        device.channel_op('add', work, sum_dy, work, self.inner)
        device.scale(work, -1.0 / self.batch_count, work)
        device.axpby(1.0, dy, 1.0, work)
        device.copy(work, dx)
        device.channel_op('div', dx, self.device_std, dx, self.inner)
