"""SPP, spatial pyramid pooling (Caffe's spp_layer.cpp), built from cct's own Pooling layer.

Easy to get wrong, all as Caffe does it: level l pools into 2^l bins per side with
kernel = ceil(H / bins), stride = kernel and pad = (kernel*bins - H + 1) / 2 (per axis), so a small
input can make pad >= kernel, which Pooling refuses (and STOCHASTIC refuses any pad). Each level's
(N, C, bins, bins) output is flattened and the levels are concatenated into an (N, C * sum(bins^2))
top, level 0 first; with ``pyramid_height: 1`` the top is the single level's 4-D (N, C, 1, 1)
output, unflattened. The pyramid is rebuilt whenever the input shape changes. Backward sums the
levels' gradients.
"""
from cct.blob import Blob
from cct.errors import NetError
from cct.layers.base import Layer, register
from cct.layers.pooling import PoolingLayer
from cct.proto import caffe_pb2

_POOL_METHODS = {
    caffe_pb2.SPPParameter.MAX: caffe_pb2.PoolingParameter.MAX,
    caffe_pb2.SPPParameter.AVE: caffe_pb2.PoolingParameter.AVE,
    caffe_pb2.SPPParameter.STOCHASTIC: caffe_pb2.PoolingParameter.STOCHASTIC,
}


def spp_level_geometry(level, height, width):
    """(kernel_h, kernel_w, pad_h, pad_w) of pyramid level ``level`` (Caffe's GetPoolingParam)."""
    bins = 2 ** level
    kernel_h = -(-height // bins)
    kernel_w = -(-width // bins)
    return (kernel_h, kernel_w, (kernel_h * bins - height + 1) // 2,
            (kernel_w * bins - width + 1) // 2)


@register('SPP')
class SPPLayer(Layer):
    primitives = PoolingLayer.primitives + ('strided_copy', 'axpby')
    num_bottom = 1
    num_top = 1
    inplace = False

    def setup(self, bottom, top):
        p = self.param.spp_param
        if p.pyramid_height < 1:
            self.fail('pyramid_height must be at least 1, got %d' % p.pyramid_height)
        self.pyramid_height = p.pyramid_height
        self.method = _POOL_METHODS[p.pool]
        self.levels = []
        self.level_tops = []
        # Levels after the first backpropagate into this blob (it shares the bottom's data) and
        # are summed into the bottom's diff, as Caffe's internal Split layer does.
        self.level_bottom = Blob(dtype=self.dtype, device=self.device)
        self._shape_key = None

    def _pooling_param(self, level, height, width):
        kernel_h, kernel_w, pad_h, pad_w = spp_level_geometry(level, height, width)
        # Caffe builds a fresh LayerParameter, so the inner Pooling layers are always in phase TRAIN
        # (a Caffe bug: STOCHASTIC SPP samples even in a TEST net); cct does the same.
        param = caffe_pb2.LayerParameter(name='%s_level%d' % (self.name, level), type='Pooling',
                                         phase=caffe_pb2.TRAIN)
        pool = param.pooling_param
        pool.pool = self.method
        pool.kernel_h, pool.kernel_w = kernel_h, kernel_w
        pool.stride_h, pool.stride_w = kernel_h, kernel_w
        pool.pad_h, pool.pad_w = pad_h, pad_w
        return param

    def reshape(self, bottom, top):
        if bottom[0].ndim != 4:
            self.fail('input must have 4 axes (num, channels, height, width), got shape %s'
                      % (bottom[0].shape,))
        shape = bottom[0].shape
        if shape == self._shape_key:
            return
        num, channels, height, width = shape
        if height <= 0 or width <= 0:
            self.fail('input dimensions cannot be zero, got shape %s' % (shape,))
        single = self.pyramid_height == 1
        self.levels, self.level_tops = [], []
        for level in range(self.pyramid_height):
            layer = PoolingLayer(self._pooling_param(level, height, width), self.dtype,
                                 self.device)
            level_top = top[0] if single else Blob(dtype=self.dtype, device=self.device)
            try:
                layer.layer_setup([bottom[0]], [level_top])
            except NetError as error:
                self.fail('pyramid level %d (%d bins per side) on a %dx%d input: %s'
                          % (level, 2 ** level, height, width, error))
            self.levels.append(layer)
            self.level_tops.append(level_top)
        if not single:
            top[0].reshape(num, sum(blob.count_range(1) for blob in self.level_tops))
        self._shape_key = shape

    def _level_columns(self):
        """Each level's layer, its top, and the columns of the flattened top it fills."""
        start = 0
        for layer, level_top in zip(self.levels, self.level_tops):
            size = level_top.count_range(1)
            yield layer, level_top, slice(start, start + size)
            start += size

    def forward(self, bottom, top):
        if self.pyramid_height == 1:
            self.levels[0].forward(bottom, top)
            return
        num, row = bottom[0].shape[0], top[0].count_range(1)
        for layer, level_top, columns in self._level_columns():
            layer.forward(bottom, [level_top])
            width = columns.stop - columns.start
            self.device.strided_copy(level_top.dev_data, top[0].dev_data, num, width, width, 0,
                                     row, columns.start)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self.pyramid_height == 1:
            self.levels[0].backward(top, propagate_down, bottom)
            return
        num, row = bottom[0].shape[0], top[0].count_range(1)
        if self.level_bottom.shape != bottom[0].shape or \
                not self.level_bottom.shares_data_with(bottom[0]):
            self.level_bottom.reshape(bottom[0].shape)
            self.level_bottom.share_data(bottom[0])
        for index, (layer, level_top, columns) in enumerate(self._level_columns()):
            width = columns.stop - columns.start
            self.device.strided_copy(top[0].dev_diff, level_top.dev_diff, num, width, row,
                                     columns.start, width, 0)
            target = bottom[0] if index == 0 else self.level_bottom
            layer.backward([level_top], [True], [target])
            if index:
                self.device.axpby(1.0, self.level_bottom.dev_diff, 1.0, bottom[0].dev_diff)
