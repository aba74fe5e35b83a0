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

    def reshape(self, bottom, top):
        self.axis = bottom[0].canonical_axis(self.param.softmax_param.axis)
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        softmax_forward(bottom[0].data, top[0].data, self.axis)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y, dy = top[0].data, top[0].diff
        dot = (dy * y).sum(axis=self.axis, keepdims=True)
        np.multiply(dy - dot, y, out=bottom[0].diff)
