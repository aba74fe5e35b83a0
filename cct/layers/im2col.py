"""Im2col (Caffe's im2col_layer.cpp): the lowering behind Convolution, exposed as a layer.

Easy to get wrong, all as Caffe does it: the top is (N, C*kh*kw, out_h, out_w) with channel index
(c*kh + i)*kw + j for kernel offset (i, j); out = floor((in + 2*pad - dilation*(k-1) - 1)/stride) + 1;
padding reads as 0; backward is col2im, summing overlapping windows. It reads
``convolution_param`` (kernel/stride/pad/dilation/axis) but has no weights and ignores num_output.
It lowers through its device's ``im2col``/``col2im`` and reorders the columns with numpy, so it
runs on the CPU only.
"""
import numpy as np

from cct import workspace
from cct.layers.base import Layer, register
from cct.layers.geometry import conv_geometry, conv_out_size


@register('Im2col')
class Im2colLayer(Layer):
    num_bottom = 1
    num_top = 1
    inplace = False

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
            col = workspace.scratch('col', (self.rows, (stop - start) * self.pixels), self.dtype)
            # The batched kernel's columns run (image, pixel); the top wants image-major blocks.
            yield start, stop, col, col.reshape(self.rows, stop - start, self.pixels)

    def forward(self, bottom, top):
        images = bottom[0].data.reshape((self.num, self.channels) + self.in_hw)
        out = top[0].data.reshape(self.num, self.rows, self.pixels)
        for start, stop, col, by_row in self._partitions():
            self.device.im2col(self.plan, images[start:stop], col)
            out[start:stop] = by_row.transpose(1, 0, 2)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        grads = top[0].diff.reshape(self.num, self.rows, self.pixels)
        image_diff = bottom[0].diff.reshape((self.num, self.channels) + self.in_hw)
        for start, stop, col, by_row in self._partitions():
            by_row[...] = grads[start:stop].transpose(1, 0, 2)
            self.device.col2im(self.plan, col, image_diff[start:stop])
