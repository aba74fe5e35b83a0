"""Crop (Caffe's crop_layer.cpp): cut bottom 0 down to bottom 1's shape from axis ``axis`` on.

Easy to get wrong, all as Caffe does it: ``axis`` defaults to 2 (the spatial axes of N, C, H, W) and
may be negative; ``offset`` is empty (all 0), one value for every cropped axis, or exactly one value
per axis from ``axis`` to the end; axes before ``axis`` keep bottom 0's size; bottom 1 only supplies
a shape and never receives a gradient; backward zeroes bottom 0's diff outside the crop.
"""
from cct.layers.base import Layer, register


@register('Crop')
class CropLayer(Layer):
    primitives = ('copy_window',)
    num_bottom = 2
    num_top = 1
    inplace = False

    def setup(self, bottom, top):
        p = self.param.crop_param
        try:
            self.start_axis = bottom[0].canonical_axis(p.axis)
        except ValueError as error:
            self.fail('crop axis: %s' % error)
        self.offsets = list(p.offset)
        cropped = bottom[0].ndim - self.start_axis
        if len(self.offsets) > 1 and len(self.offsets) != cropped:
            self.fail('number of offset values specified (%d) must be equal to the number of '
                      'dimensions following axis %d (%d)'
                      % (len(self.offsets), self.start_axis, cropped))
        self._shape_key = None

    def reshape(self, bottom, top):
        key = (bottom[0].shape, bottom[1].shape)
        if key == self._shape_key:
            return
        data_shape, size_shape = key
        if len(size_shape) < len(data_shape):
            self.fail('bottom 1 (shape %s) must have at least the %d axes of bottom 0 (shape %s)'
                      % (size_shape, len(data_shape), data_shape))
        new_shape, slices = [], []
        for i, size in enumerate(data_shape):
            if i < self.start_axis:
                new_shape.append(size)
                slices.append(slice(None))
                continue
            offset = (self.offsets[0] if len(self.offsets) == 1 else
                      self.offsets[i - self.start_axis] if self.offsets else 0)
            if size - offset < size_shape[i]:
                self.fail('the crop for dimension %d is out-of-bounds with size %d and offset %d '
                          '(bottom 0 has %d there)' % (i, size_shape[i], offset, size))
            new_shape.append(size_shape[i])
            slices.append(slice(offset, offset + size_shape[i]))
        self.window = tuple(slices)
        self.offsets_all = tuple(window.start or 0 for window in slices)
        top[0].reshape(tuple(new_shape))
        self._shape_key = key

    def forward(self, bottom, top):
        self.device.copy_window(bottom[0].dev_data, top[0].dev_data, self.offsets_all)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            self.device.copy_window(bottom[0].dev_diff, top[0].dev_diff, self.offsets_all,
                                    backward=True)
