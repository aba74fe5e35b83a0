"""Softmax along ``axis`` (Caffe's softmax_layer.cpp), max-subtracted for stability; every other axis
is independent. Shared with SoftmaxWithLoss through ``softmax_forward``."""
import numpy as np

from cct.layers.base import Layer, register


def softmax_forward(x, out, axis):
    """``out = softmax(x)`` along ``axis``; ``out`` may be ``x``."""
    np.subtract(x, x.max(axis=axis, keepdims=True), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=axis, keepdims=True)


@register('Softmax')
class SoftmaxLayer(Layer):
    num_bottom = 1
    num_top = 1
    primitives = ('softmax', 'softmax_backward')

    def reshape(self, bottom, top):
        self.axis = bottom[0].canonical_axis(self.param.softmax_param.axis)
        self.sizes = (bottom[0].count_range(0, self.axis), bottom[0].shape[self.axis],
                      bottom[0].count_range(self.axis + 1))
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        self.device.softmax(bottom[0].dev_data, top[0].dev_data, *self.sizes)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        self.device.softmax_backward(top[0].dev_data, top[0].dev_diff, bottom[0].dev_diff,
                                     *self.sizes)
