"""Embed (Caffe's embed_layer.cpp): each bottom value is an integer index selecting a row of the
(input_dim, num_output) weight matrix, plus an optional bias.

Easy to get wrong, all as Caffe does it: the top shape is the bottom's shape with ``num_output``
appended; every value must be an integer in [0, input_dim) (a fractional or out-of-range value is an
error, not a rounding); there is no gradient to the indices, and the weight gradient adds up rows
that the same index selected several times.
"""
import numpy as np

from cct.layers.base import Layer, register


@register('Embed')
class EmbedLayer(Layer):
    primitives = ('gather_rows', 'scatter_add_rows', 'add_bias', 'channel_sum')
    num_bottom = 1
    num_top = 1

    def allow_force_backward(self, bottom_index):
        # Caffe aborts when force_backward reaches the indices; cct leaves them out instead.
        return False

    def setup(self, bottom, top):
        p = self.param.embed_param
        if p.num_output <= 0:
            self.fail('EmbedLayer num_output must be positive (got %d)' % p.num_output)
        if p.input_dim <= 0:
            self.fail('EmbedLayer input_dim must be positive (got %d)' % p.input_dim)
        self.num_output = p.num_output
        self.input_dim = p.input_dim
        self.bias_term = p.bias_term
        specs = [((self.input_dim, self.num_output), p.weight_filler)]
        if self.bias_term:
            specs.append(((self.num_output,), p.bias_filler))
        self.make_param_blobs(specs)

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape + (self.num_output,))

    def _indices(self, bottom):
        values = bottom[0].data.reshape(-1)
        indices = values.astype(np.int64)
        bad = (indices < 0) | (indices >= self.input_dim) | (indices != values)
        if bad.any():
            where = int(np.flatnonzero(bad)[0])
            self.fail('input %d is %r; embed inputs must be integers in [0, input_dim=%d)'
                      % (where, float(values[where]), self.input_dim))
        return indices

    def forward(self, bottom, top):
        out = top[0].dev_data.reshape(-1, self.num_output)
        self.device.gather_rows(self.blobs[0].dev_data, self._indices(bottom), out)
        if self.bias_term:
            self.device.add_bias(out, self.blobs[1].dev_data, 1)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            self.fail("can't backpropagate to EmbedLayer input")
        grad = top[0].dev_diff.reshape(-1, self.num_output)
        if self.param_propagate_down[0]:
            self.device.scatter_add_rows(grad, self._indices(bottom), self.blobs[0].dev_diff)
        if self.bias_term and self.param_propagate_down[1]:
            self.device.channel_sum(grad, self.blobs[1].dev_diff, 1, wide=False)
