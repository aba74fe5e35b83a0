"""Tile (Caffe's tile_layer.cpp): repeat the bottom ``tiles`` times along ``axis``.

Easy to get wrong, as Caffe does it: the whole block from ``axis`` on is repeated (top axis size =
``tiles`` * bottom axis size, copies laid end to end, not interleaved), ``tiles`` is required and must
be positive, and backward sums the copies.
"""

from cct.layers.base import Layer, register


@register('Tile')
class TileLayer(Layer):
    num_bottom = 1
    num_top = 1
    primitives = ('strided_copy', 'sum_axis')

    def setup(self, bottom, top):
        p = self.param.tile_param
        if not p.HasField('tiles'):
            self.fail('tile_param.tiles must be specified')
        if p.tiles <= 0:
            self.fail('number of tiles must be positive (got %d)' % p.tiles)
        self.tiles = p.tiles

    def reshape(self, bottom, top):
        try:
            self.axis = bottom[0].canonical_axis(self.param.tile_param.axis)
        except ValueError as error:
            self.fail(str(error))
        shape = bottom[0].shape
        top[0].reshape(shape[:self.axis] + (shape[self.axis] * self.tiles,) +
                       shape[self.axis + 1:])
        self.outer = bottom[0].count_range(0, self.axis)
        self.inner = bottom[0].count_range(self.axis)

    def forward(self, bottom, top):
        row = self.tiles * self.inner
        for tile in range(self.tiles):
            self.device.strided_copy(bottom[0].dev_data, top[0].dev_data, self.outer, self.inner,
                                     self.inner, 0, row, tile * self.inner)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        self.device.sum_axis(top[0].dev_diff, bottom[0].dev_diff, self.outer, self.tiles,
                             self.inner)
