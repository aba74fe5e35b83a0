"""Reduction (Caffe's reduction_layer.cpp): SUM, ASUM, SUMSQ or MEAN over every axis from ``axis``
on, times ``coeff``.

Easy to get wrong, all as Caffe does it: only tail reductions exist (all axes >= ``axis``), so the
top's shape is the bottom's first ``axis`` dimensions (``axis: 0``, the default, gives a scalar);
MEAN folds 1/(reduced count) into the coefficient; ASUM's gradient uses sign(x) with sign(0) = 0.
"""
import numpy as np

from cct.layers.base import Layer, register
from cct.proto import caffe_pb2

_Op = caffe_pb2.ReductionParameter


@register('Reduction')
class ReductionLayer(Layer):
    num_bottom = 1
    num_top = 1

    def setup(self, bottom, top):
        self.op = self.param.reduction_param.operation

    def reshape(self, bottom, top):
        try:
            self.axis = bottom[0].canonical_axis(self.param.reduction_param.axis)
        except ValueError as error:
            self.fail(str(error))
        top[0].reshape(bottom[0].shape[:self.axis])
        self.num = bottom[0].count_range(0, self.axis)
        self.dim = bottom[0].count_range(self.axis)
        coeff = self.param.reduction_param.coeff
        if self.op == _Op.MEAN and self.dim:
            coeff /= self.dim
        self.coeff = self.dtype.type(coeff)

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.num, self.dim)
        out = top[0].data.reshape(self.num)
        if self.op in (_Op.SUM, _Op.MEAN):
            np.sum(x, axis=1, out=out)
        elif self.op == _Op.ASUM:
            np.sum(np.abs(x), axis=1, out=out)
        elif self.op == _Op.SUMSQ:
            np.einsum('ij,ij->i', x, x, out=out)
        else:
            self.fail('unknown reduction operation %d' % self.op)
        if self.coeff != 1:
            out *= self.coeff

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        scale = top[0].diff.reshape(self.num, 1) * self.coeff
        grad = bottom[0].diff.reshape(self.num, self.dim)
        x = bottom[0].data.reshape(self.num, self.dim)
        if self.op in (_Op.SUM, _Op.MEAN):
            grad[...] = scale
        elif self.op == _Op.ASUM:
            np.multiply(np.sign(x), scale, out=grad)
        else:
            np.multiply(x, 2 * scale, out=grad)
