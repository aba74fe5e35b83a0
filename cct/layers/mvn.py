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
from cct.workspace import scratch


@register('MVN')
class MVNLayer(Layer):
    num_bottom = 1
    num_top = 1

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
        if self.std is None or self.std.size != self.groups:
            self.std = np.empty(self.groups, self.dtype)

    def _groups(self, array):
        """``array`` as (groups, values per group)."""
        return array.reshape(self.groups, -1)

    def forward(self, bottom, top):
        x = self._groups(bottom[0].data)
        y = self._groups(top[0].data)
        dtype = self.dtype.type
        size = dtype(x.shape[1])
        mean = x.sum(axis=1) / size
        np.subtract(x, mean[:, None], out=y)
        if self.normalize_variance:
            squares = scratch('mvn', y.shape, self.dtype)
            np.multiply(y, y, out=squares)
            np.divide(squares.sum(axis=1), size, out=self.std)
            np.sqrt(self.std, out=self.std)
            self.std += self.eps
            y /= self.std[:, None]

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = self._groups(top[0].diff)
        dx = self._groups(bottom[0].diff)
        size = dy.shape[1]
        if not self.normalize_variance:
            mean_dy = dy.sum(axis=1) / self.dtype.type(size)
            np.subtract(dy, mean_dy[:, None], out=dx)
            return
        y = self._groups(top[0].data)
        work = scratch('mvn', y.shape, self.dtype)
        np.multiply(y, dy, out=work)
        sum_dy_y = work.sum(axis=1)
        sum_dy = dy.sum(axis=1)
        np.multiply(y, sum_dy_y[:, None], out=work)
        work += sum_dy[:, None]
        work *= self.dtype.type(-1.0 / size)
        np.add(dy, work, out=dx)
        dx /= self.std[:, None]
