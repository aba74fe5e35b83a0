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
* Caffe's LayerSetUp takes 1 channel for a 1-axis bottom but then fails in Reshape; cct accepts it.
"""
import numpy as np

from cct.layers.base import Layer, register
from cct.proto import caffe_pb2
from cct.workspace import scratch


@register('BatchNorm')
class BatchNormLayer(Layer):
    num_bottom = 1
    num_top = 1

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
        if self.x_norm is None or self.x_norm.shape != shape:
            # The normalised output is kept because a later in-place layer may overwrite the top.
            self.x_norm = np.empty(shape, self.dtype)

    def _batch_view(self, array):
        """``array`` as (num, channels, spatial)."""
        return array.reshape(array.shape[0], self.channels, -1)

    def _per_channel(self, values):
        """A (channels,) vector as (1, channels, 1), to broadcast against a batch view."""
        return values.reshape(1, -1, 1)

    def forward(self, bottom, top):
        x = self._batch_view(bottom[0].data)
        y = self._batch_view(top[0].data)
        dtype = self.dtype.type
        if self.use_global_stats:
            normaliser = self.blobs[2].data[0]
            factor = dtype(0) if normaliser == 0 else dtype(1) / normaliser
            mean = factor * self.blobs[0].data
            variance = factor * self.blobs[1].data
        else:
            per_channel = x.shape[0] * x.shape[2]
            mean = x.sum(axis=(0, 2)) / dtype(per_channel)
        np.subtract(x, self._per_channel(mean), out=y)
        if not self.use_global_stats:
            squares = scratch('batch_norm', y.shape, self.dtype)
            np.multiply(y, y, out=squares)
            variance = squares.sum(axis=(0, 2)) / dtype(per_channel)
            fraction = self.moving_average_fraction
            self.blobs[2].data[0] = self.blobs[2].data[0] * fraction + 1
            self.blobs[0].data[...] *= fraction
            self.blobs[0].data[...] += mean
            # The running variance is the unbiased estimate, m/(m−1) times the batch variance.
            count = bottom[0].count // self.channels
            correction = dtype(count) / dtype(count - 1) if count > 1 else dtype(1)
            self.blobs[1].data[...] *= fraction
            self.blobs[1].data[...] += correction * variance
        np.add(variance, self.eps, out=self.std)
        np.sqrt(self.std, out=self.std)
        y /= self._per_channel(self.std)
        np.copyto(self.x_norm, top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = self._batch_view(top[0].diff)
        dx = self._batch_view(bottom[0].diff)
        std = self._per_channel(self.std)
        if self.use_global_stats:
            np.divide(dy, std, out=dx)
            return
        # dx = (dy − mean(dy) − mean(dy·y)·y) / sqrt(var + eps), the means per channel. Both sums
        # are taken before dx is written, since in-place dx is dy.
        y = self._batch_view(self.x_norm)
        work = scratch('batch_norm', y.shape, self.dtype)
        np.multiply(y, dy, out=work)
        sum_dy_y = work.sum(axis=(0, 2))
        sum_dy = dy.sum(axis=(0, 2))
        np.multiply(y, self._per_channel(sum_dy_y), out=work)
        work += self._per_channel(sum_dy)
        work *= self.dtype.type(-1.0 / (y.shape[0] * y.shape[2]))
        np.add(dy, work, out=dx)
        dx /= std
