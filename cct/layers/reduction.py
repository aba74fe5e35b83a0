"""Reduction (Caffe's reduction_layer.cpp): SUM, ASUM, SUMSQ or MEAN over every axis from ``axis``
on, times ``coeff``.

Easy to get wrong, all as Caffe does it: only tail reductions exist (all axes >= ``axis``), so the
top's shape is the bottom's first ``axis`` dimensions (``axis: 0``, the default, gives a scalar);
MEAN folds 1/(reduced count) into the coefficient; ASUM's gradient uses sign(x) with sign(0) = 0.
"""
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

    @property
    def primitives(self):
        if self.param.reduction_param.operation == _Op.SUMSQ:
            return ('dot_rows', 'scale', 'scratch', 'channel_op')
        return ('sum_axis', 'scale', 'scratch', 'fill', 'channel_op', ('unary', 'abs'),
                ('unary_backward', 'abs'))

    def forward(self, bottom, top):
        if self.op not in (_Op.SUM, _Op.MEAN, _Op.ASUM, _Op.SUMSQ):
            self.fail('unknown reduction operation %d' % self.op)
        device = self.device
        x, out = bottom[0].dev_data, top[0].dev_data
        if self.op == _Op.SUMSQ:
            device.dot_rows(x, x, out)
            if self.coeff != 1:
                device.scale(out, self.coeff, out)
            return
        if self.op == _Op.ASUM:
            absolute = device.scratch('reduction', x.shape, self.dtype)
            device.unary('abs', x, absolute)
            x = absolute
        device.sum_axis(x, out, self.num, self.dim, 1)
        if self.coeff != 1:
            device.scale(out, self.coeff, out)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        device = self.device
        scale = device.scratch('reduction_scale', (self.num,), self.dtype)
        device.scale(top[0].dev_diff, self.coeff, scale)
        grad = bottom[0].dev_diff
        if self.op == _Op.SUMSQ:
            # x * (2 * (top_diff * coeff)) per row: each product rounds as before the seam.
            device.scale(scale, 2.0, scale)
            device.channel_op('mul', bottom[0].dev_data, scale, grad, self.dim)
            return
        device.fill(grad, 0)
        device.channel_op('add', grad, scale, grad, self.dim)
        if self.op == _Op.ASUM:
            device.unary_backward('abs', bottom[0].dev_data, None, grad, grad)
