"""MVN (Caffe's mvn_layer.cpp): mean-variance normalisation of each image's channels (or of each
whole image with across_channels).

Rules that are easy to get wrong:
* eps is added to the standard deviation, not the variance: y = (x − mean) / (sqrt(var) + eps),
  with the biased variance.
* Caffe shapes the top from the legacy num/channels/height/width accessors, so the top is always
  4-D (an (N, C) bottom gives an (N, C, 1, 1) top) and bottoms with more than 4 axes are refused.
* The backward is Caffe's: (dy − mean(dy) − y·mean(dy·y)) / (sqrt(var) + eps), which is the exact
  gradient only for eps = 0 (the default, 1e-9, makes the difference negligible).
* Caffe's backward with normalize_variance is corrupted in-place (it overwrites the top diff before
  reading it); cct takes both sums first, so in-place gives the true gradient (a deliberate fix).
"""
import numpy as np

from cct.layers.base import Layer, register


@register('MVN')
class MVNLayer(Layer):
    num_bottom = 1
    num_top = 1
    primitives = ('channel_sum', 'channel_op', 'mul', 'scale', 'axpby', 'copy', 'to_host',
                  'from_host', 'scratch')

    def setup(self, bottom, top):
        param = self.param.mvn_param
        self.normalize_variance = param.normalize_variance
        self.across_channels = param.across_channels
        self.eps = self.dtype.type(param.eps)
        self.std = None

    def reshape(self, bottom, top):
        if bottom[0].ndim > 4:
            self.fail('Cannot use legacy accessors on Blobs with > 4 axes (bottom shape %s)'
                      % (bottom[0].shape,))
        legacy = tuple(bottom[0].legacy_shape(i) for i in range(4))
        top[0].reshape(legacy)
        self.groups = legacy[0] if self.across_channels else legacy[0] * legacy[1]
        self.size = bottom[0].count // max(self.groups, 1)
        if self.std is None or self.std.size != self.groups:
            self.std = np.empty(self.groups, self.dtype)

    def _sums(self, values, purpose):
        """Per-group sums of ``values`` (groups x size), in the dtype, on the device."""
        sums = self.device.scratch(purpose, (self.groups,), self.dtype)
        self.device.channel_sum(values, sums, self.size, accumulate=False, wide=False)
        return sums

    def _mean(self, values):
        # A few values per batch: the means are finished on the host.
        return self.device.from_host(self.device.to_host(self._sums(values, 'mvn_sums')) /
                                     self.dtype.type(self.size))

    def forward(self, bottom, top):
        device = self.device
        x, y = bottom[0].dev_data, top[0].dev_data
        device.channel_op('sub', x, self._mean(x), y, self.size)
        if self.normalize_variance:
            squares = device.scratch('mvn', y.shape, self.dtype)
            device.mul(y, y, squares)
            np.divide(device.to_host(self._sums(squares, 'mvn_sums')), self.dtype.type(self.size),
                      out=self.std)
            np.sqrt(self.std, out=self.std)
            self.std += self.eps
            self.device_std = device.from_host(self.std)
            device.channel_op('div', y, self.device_std, y, self.size)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        device = self.device
        dy, dx = top[0].dev_diff, bottom[0].dev_diff
        if not self.normalize_variance:
            device.channel_op('sub', dy, self._mean(dy), dx, self.size)
            return
        y = top[0].dev_data
        work = device.scratch('mvn', y.shape, self.dtype)
        device.mul(y, dy, work)
        sum_dy_y = self._sums(work, 'mvn_sums')
        sum_dy = self._sums(dy, 'mvn_sums_2')
        device.channel_op('mul', y, sum_dy_y, work, self.size)
        device.channel_op('add', work, sum_dy, work, self.size)
        device.scale(work, -1.0 / self.size, work)
        device.axpby(1.0, dy, 1.0, work)
        device.copy(work, dx)
        device.channel_op('div', dx, self.device_std, dx, self.size)
