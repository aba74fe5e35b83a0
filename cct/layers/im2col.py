"""Im2col (Caffe's im2col_layer.cpp): the lowering behind Convolution, exposed as a layer.

Easy to get wrong, all as Caffe does it: the top is (N, C*kh*kw, out_h, out_w) with channel index
(c*kh + i)*kw + j for kernel offset (i, j); out = floor((in + 2*pad - dilation*(k-1) - 1)/stride) + 1;
padding reads as 0; backward is col2im, summing overlapping windows. It reads
``convolution_param`` (kernel/stride/pad/dilation/axis) but has no weights and ignores num_output.
It lowers a partition of the batch at a time through its device's ``im2col``/``col2im`` and
reorders the columns into image-major blocks with strided copies.
"""
import numpy as np

from cct import workspace
from cct.layers.base import Layer, register
from cct.layers.geometry import check_window_reach, conv_geometry, conv_out_size


@register('Im2col')
class Im2colLayer(Layer):
    num_bottom = 1
    num_top = 1
    inplace = False
    primitives = ('conv_plan', 'im2col', 'col2im', 'strided_copy', 'scratch')

    def setup(self, bottom, top):
        p = self.param.convolution_param
        self.axis = bottom[0].canonical_axis(p.axis)
        spatial = bottom[0].ndim - self.axis - 1
        if spatial != 2:
            self.fail('only 2-D im2col is supported (input %s has %d spatial axes after axis %d)'
                      % (bottom[0].shape, spatial, self.axis))
        self.geometry = conv_geometry(p, spatial, self.describe())
        self._shape_key = None

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if shape == self._shape_key:
            return
        if bottom[0].ndim != self.axis + 3:
            self.fail('input must keep %d axes, got shape %s' % (self.axis + 3, shape))
        g = self.geometry
        self.num = int(np.prod(shape[:self.axis], dtype=np.int64))
        self.channels = shape[self.axis]
        self.in_hw = tuple(shape[self.axis + 1:])
        self.out_hw = tuple(conv_out_size(self.in_hw[i], g.kernel[i], g.stride[i], g.pad[i],
                                          g.dilation[i]) for i in range(2))
        if min(self.out_hw) <= 0:
            self.fail('output would be empty: input %s with kernel %s, stride %s, pad %s, '
                      'dilation %s' % (self.in_hw, g.kernel, g.stride, g.pad, g.dilation))
        for i, axis in enumerate(('height', 'width')):
            check_window_reach(self.describe(), axis, self.in_hw[i], g.kernel[i], g.stride[i],
                               g.pad[i], g.dilation[i])
        self.rows = self.channels * g.kernel[0] * g.kernel[1]
        self.plan = self.device.conv_plan(self.num, self.channels, self.in_hw, 0, self.out_hw, 1,
                                          g.kernel, g.pad, g.stride, g.dilation, self.dtype)
        self.pixels = self.out_hw[0] * self.out_hw[1]
        per_image = self.rows * self.pixels * self.dtype.itemsize
        self.partition = int(max(1, min(self.num,
                                        workspace.LOWERING_BUDGET_BYTES // max(per_image, 1))))
        top[0].reshape(shape[:self.axis] + (self.rows,) + self.out_hw)
        self._shape_key = shape

    def _partitions(self):
        for start in range(0, self.num, self.partition):
            stop = min(start + self.partition, self.num)
            col = self.device.scratch('col', (self.rows, (stop - start) * self.pixels),
                                      self.dtype)
            yield start, stop, col

    def _images(self, array, start, stop):
        """Images ``start``..``stop`` of a blob's array, through a 1-D slice (what every
        device's arrays allow)."""
        size = self.channels * self.in_hw[0] * self.in_hw[1]
        return array.reshape(-1)[start * size:stop * size].reshape(
            (stop - start, self.channels) + self.in_hw)

    def _transfer(self, col, top_array, start, stop, to_top):
        """The batched kernel's columns run (image, pixel); the top wants image-major blocks:
        copy image n's (rows, pixels) block between ``col`` and the top."""
        block = self.rows * self.pixels
        flat = top_array.reshape(-1)
        width = (stop - start) * self.pixels
        for n in range(start, stop):
            image = flat[n * block:(n + 1) * block]
            offset = (n - start) * self.pixels
            if to_top:
                self.device.strided_copy(col, image, self.rows, self.pixels, width, offset,
                                         self.pixels, 0)
            else:
                self.device.strided_copy(image, col, self.rows, self.pixels, self.pixels, 0,
                                         width, offset)

    def forward(self, bottom, top):
        for start, stop, col in self._partitions():
            self.device.im2col(self.plan, self._images(bottom[0].dev_data, start, stop), col)
            self._transfer(col, top[0].dev_data, start, stop, to_top=True)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        for start, stop, col in self._partitions():
            self._transfer(col, top[0].dev_diff, start, stop, to_top=False)
            self.device.col2im(self.plan, col, self._images(bottom[0].dev_diff, start, stop))
