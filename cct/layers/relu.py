"""ReLU (Caffe's relu_layer.cpp): y = max(x, 0) + negative_slope * min(x, 0).

The gradient at exactly 0 is the negative slope's (Caffe tests ``bottom_data > 0``), and backward
reads the bottom data, which in-place is the output: the sign is the same, so in-place is safe for
slopes >= 0. With a negative slope an in-place ReLU gets the wrong gradient, as Caffe's does.
"""
import numpy as np

from cct.layers.base import Layer, register


@register('ReLU')
class ReLULayer(Layer):
    num_bottom = 1
    num_top = 1

    def setup(self, bottom, top):
        self.slope = self.dtype.type(self.param.relu_param.negative_slope)

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        if self.slope == 0:
            np.maximum(x, 0, out=y)
        else:
            np.add(np.maximum(x, 0), self.slope * np.minimum(x, 0), out=y)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, dy, dx = bottom[0].data, top[0].diff, bottom[0].diff
        if self.slope == 0:
            np.multiply(dy, x > 0, out=dx)
        else:
            np.multiply(dy, np.where(x > 0, self.dtype.type(1), self.slope), out=dx)
