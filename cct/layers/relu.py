"""ReLU (Caffe's relu_layer.cpp): y = max(x, 0) + negative_slope * min(x, 0).

The gradient at exactly 0 is the negative slope's (Caffe tests ``bottom_data > 0``), and backward
reads the bottom data, which in-place is the output: the sign is the same, so in-place is safe for
slopes >= 0. With a negative slope an in-place ReLU gets the wrong gradient, as Caffe's does.
"""
from cct.layers.base import Layer, register


@register('ReLU')
class ReLULayer(Layer):
    num_bottom = 1
    num_top = 1
    primitives = (('unary', 'relu'), ('unary_backward', 'relu'))

    def setup(self, bottom, top):
        self.slope = self.dtype.type(self.param.relu_param.negative_slope)

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        self.device.unary('relu', bottom[0].dev_data, top[0].dev_data, slope=self.slope)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        self.device.unary_backward('relu', bottom[0].dev_data, None, top[0].dev_diff,
                                   bottom[0].dev_diff, slope=self.slope)
