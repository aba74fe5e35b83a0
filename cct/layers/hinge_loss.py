"""HingeLoss (Caffe's hinge_loss_layer.cpp): the one-vs-all hinge loss of (N, K...) scores against
integer labels, L1 (default) or squared (L2).

Easy to get wrong, as Caffe does it: with delta = -1 for the true class and +1 for every other, the
loss is sum(max(0, 1 + delta x)) / N for L1 and sum(max(0, 1 + delta x)^2) / N for L2 (no 1/2); the
L1 gradient is delta / N where the margin is positive and 0 where it is exactly 0.
"""
import numpy as np

from cct.layers.base import register
from cct.layers.logistic_loss import checked_labels
from cct.layers.loss import LossLayer
from cct.proto import caffe_pb2

_Norm = caffe_pb2.HingeLossParameter


@register('HingeLoss')
class HingeLossLayer(LossLayer):
    # Caffe has no GPU code for this layer: in GPU mode it runs its CPU code on synced host
    # arrays, and so does cct on any device.
    host_layer = True

    def setup(self, bottom, top):
        self.norm = self.param.hinge_loss_param.norm

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.num = bottom[0].num
        self.dim = bottom[0].count // self.num
        if bottom[1].count != self.num:
            self.fail('needs one label per item: %d labels for %d items'
                      % (bottom[1].count, self.num))

    def forward(self, bottom, top):
        labels, _ = checked_labels(self, bottom[1].data.reshape(-1), self.dim)
        rows = np.arange(self.num)
        self.sign = np.ones((self.num, self.dim), self.dtype)
        self.sign[rows, labels] = -1
        self.margin = np.maximum(0, 1 + self.sign * bottom[0].data.reshape(self.num, self.dim))
        if self.norm == _Norm.L2:
            flat = self.margin.reshape(-1)
            loss = np.dot(flat, flat)
        else:
            loss = self.margin.sum()
        self.divisor = self.whole_batch_sum(self.num)
        top[0].data[...] = loss / self.divisor

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            self.fail('cannot backpropagate to label inputs')
        if not propagate_down[0]:
            return
        weight = top[0].diff.reshape(-1)[0] / self.divisor
        grad = bottom[0].diff.reshape(self.num, self.dim)
        if self.norm == _Norm.L2:
            np.multiply(self.margin * self.sign, 2 * weight, out=grad)
        else:
            np.multiply((self.margin > 0) * self.sign, weight, out=grad)
