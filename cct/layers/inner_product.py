"""InnerProduct (Caffe's inner_product_layer.cpp): y = x W^T + b over the axes from ``axis`` on.

The input is viewed as (M, K) with M the product of the axes before ``axis`` and K the rest; weights
are (num_output, K), or (K, num_output) with ``transpose: true``. Legacy 4-D weights (1, 1, N, K)
from old models load into (N, K) (the net compares legacy shapes right-aligned).
"""
from cct.layers.base import Layer, register


@register('InnerProduct')
class InnerProductLayer(Layer):
    num_bottom = 1
    num_top = 1
    primitives = ('gemm', 'add_bias', 'channel_sum')

    def setup(self, bottom, top):
        p = self.param.inner_product_param
        if not p.HasField('num_output') or p.num_output == 0:
            self.fail('num_output must be specified and positive')
        self.num_output = p.num_output
        self.bias_term = p.bias_term
        self.transpose = p.transpose
        self.axis = bottom[0].canonical_axis(p.axis)
        self.k = bottom[0].count_range(self.axis)
        weight_shape = (self.k, self.num_output) if self.transpose else (self.num_output, self.k)
        specs = [(weight_shape, p.weight_filler)]
        if self.bias_term:
            specs.append(((self.num_output,), p.bias_filler))
        self.make_param_blobs(specs)

    def reshape(self, bottom, top):
        axis = bottom[0].canonical_axis(self.param.inner_product_param.axis)
        if bottom[0].count_range(axis) != self.k:
            self.fail('input size incompatible with inner product parameters: input shape %s '
                      'gives %d features from axis %d, the weights expect %d'
                      % (bottom[0].shape, bottom[0].count_range(axis), axis, self.k))
        self.m = bottom[0].count_range(0, axis)
        top[0].reshape(bottom[0].shape[:axis] + (self.num_output,))

    def forward(self, bottom, top):
        x = bottom[0].dev_data.reshape(self.m, self.k)
        out = top[0].dev_data.reshape(self.m, self.num_output)
        self.device.gemm(x, self.blobs[0].dev_data, out, trans_b=not self.transpose)
        if self.bias_term:
            self.device.add_bias(out, self.blobs[1].dev_data, 1)

    def backward(self, top, propagate_down, bottom):
        grad = top[0].dev_diff.reshape(self.m, self.num_output)
        x = bottom[0].dev_data.reshape(self.m, self.k)
        if self.param_propagate_down[0]:
            w_diff = self.blobs[0].dev_diff
            if self.transpose:
                self.device.gemm(x, grad, w_diff, trans_a=True, beta=1.0)
            else:
                self.device.gemm(grad, x, w_diff, trans_a=True, beta=1.0)
        if self.bias_term and self.param_propagate_down[1]:
            self.device.channel_sum(grad, self.blobs[1].dev_diff, 1)
        if propagate_down[0]:
            self.device.gemm(grad, self.blobs[0].dev_data, bottom[0].dev_diff.reshape(self.m, self.k),
                             trans_b=self.transpose)
