"""Eltwise (Caffe's eltwise_layer.cpp): element-wise SUM (with one coeff per bottom), PROD or MAX of
two or more bottoms of identical shape.

Easy to get wrong, all as Caffe does it: coefficients are only allowed for SUM, and then one per
bottom. PROD's gradient is the product of the *other* bottoms when ``stable_prod_grad`` (default), else
top / bottom (which divides by zero where a bottom is 0). MAX keeps the index of the winning bottom
for backward: between bottoms 0 and 1 a tie goes to bottom 1 (``a > b`` else b), later bottoms win
only when strictly greater, and the gradient goes to the winner alone.
"""
import numpy as np

from cct.layers.base import Layer, register
from cct.proto import caffe_pb2

_Op = caffe_pb2.EltwiseParameter


@register('Eltwise')
class EltwiseLayer(Layer):
    min_bottom = 2
    num_top = 1

    def setup(self, bottom, top):
        p = self.param.eltwise_param
        if len(p.coeff) not in (0, len(bottom)):
            self.fail('takes one coefficient per bottom blob (%d coeffs, %d bottoms)'
                      % (len(p.coeff), len(bottom)))
        if p.operation != _Op.SUM and len(p.coeff):
            self.fail('only takes coefficients for summation (operation %s)'
                      % _Op.EltwiseOp.Name(p.operation))
        self.op = p.operation
        self.coeffs = [self.dtype.type(c) for c in p.coeff] if len(p.coeff) else \
            [self.dtype.type(1)] * len(bottom)
        self.stable_prod_grad = p.stable_prod_grad
        self.max_index = None

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        for i, blob in enumerate(bottom[1:], 1):
            if blob.shape != shape:
                self.fail('bottom %d has shape %s, bottom 0 has %s; all bottoms must match'
                          % (i, blob.shape, shape))
        top[0].reshape(shape)
        if self.op == _Op.MAX and (self.max_index is None or self.max_index.shape != shape):
            self.max_index = self.device.empty(shape, np.int32)

    @property
    def primitives(self):
        p = self.param.eltwise_param
        if p.operation == _Op.PROD and not p.stable_prod_grad:
            return ('scratch', 'copy', 'scale', 'axpby', 'mul', 'channel_op')
        if p.operation == _Op.MAX:
            return ('scratch', 'copy', 'empty', 'max_update', 'mask_select')
        return ('scratch', 'copy', 'scale', 'axpby', 'mul')

    def forward(self, bottom, top):
        device = self.device
        out = top[0].dev_data
        # In-place (top is a bottom): build the result aside so no bottom is overwritten early.
        acc = device.scratch('eltwise', out.shape, self.dtype) \
            if any(blob is top[0] for blob in bottom) else out
        if self.op == _Op.SUM:
            first = 1
            if self.coeffs[0] == 1 and self.coeffs[1] == 1 and device.supports('add'):
                # Caffe's 0 + b0 + b1 in one pass (the same sum: b0 * 1 is b0).
                device.add(bottom[0].dev_data, bottom[1].dev_data, acc)
                first = 2
            else:
                device.scale(bottom[0].dev_data, self.coeffs[0], acc)
            for blob, coeff in zip(bottom[first:], self.coeffs[first:]):
                device.axpby(coeff, blob.dev_data, 1.0, acc)
        elif self.op == _Op.MAX:
            for i, blob in enumerate(bottom):
                device.max_update(blob.dev_data, i, acc, self.max_index)
        else:
            device.mul(bottom[0].dev_data, bottom[1].dev_data, acc)
            for blob in bottom[2:]:
                device.mul(acc, blob.dev_data, acc)
        if acc is not out:
            device.copy(acc, out)

    def backward(self, top, propagate_down, bottom):
        device = self.device
        top_diff = top[0].dev_diff
        if any(blob is top[0] for blob in bottom):
            # In-place: bottom i's diff is the top's diff.
            saved = device.scratch('eltwise_top_diff', top_diff.shape, self.dtype)
            device.copy(top_diff, saved)
            top_diff = saved
        for i, blob in enumerate(bottom):
            if not propagate_down[i]:
                continue
            if self.op == _Op.SUM:
                device.scale(top_diff, self.coeffs[i], blob.dev_diff)
                continue
            if self.op == _Op.MAX:
                device.mask_select(top_diff, self.max_index, i, blob.dev_diff)
                continue
            if not self.stable_prod_grad:
                # (top / bottom_i) * top_diff: channel_op with one "channel" per element is the
                # element-wise quotient (inf or nan where bottom_i is 0, as in Caffe).
                quotient = device.scratch('eltwise_grad', top_diff.shape, self.dtype)
                device.channel_op('div', top[0].dev_data, blob.dev_data, quotient, 1)
                device.mul(quotient, top_diff, blob.dev_diff)
                continue
            others = [b.dev_data for j, b in enumerate(bottom) if j != i]
            grad = device.scratch('eltwise_grad', top_diff.shape, self.dtype)
            device.copy(others[0], grad)
            for data in others[1:]:
                device.mul(grad, data, grad)
            device.mul(grad, top_diff, blob.dev_diff)
