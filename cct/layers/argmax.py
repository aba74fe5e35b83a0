"""ArgMax (Caffe's argmax_layer.cpp): the indices (or values) of the ``top_k`` largest entries.

Easy to get wrong, all as Caffe does it. Without ``axis`` each item of the batch is flattened and the
top has shape (N, 1, top_k), or (N, 2, top_k) with ``out_max_val`` (indices, then values), padded to
at least 3 axes. With ``axis`` the top is the bottom's shape with that axis set to ``top_k`` and holds
indices, or *only* the values when ``out_max_val``. Entries are ranked by value, then by index, both
descending (Caffe partial-sorts (value, index) pairs with std::greater), so among equal values the
*highest* index comes first. Indices are written as floats. No backward.
"""
import numpy as np

from cct.layers.base import Layer, register


@register('ArgMax')
class ArgMaxLayer(Layer):
    # Caffe has no GPU code for this layer: in GPU mode it runs its CPU code on synced host
    # arrays, and so does cct on any device.
    host_layer = True
    num_bottom = 1
    num_top = 1

    def setup(self, bottom, top):
        p = self.param.argmax_param
        self.top_k = p.top_k
        self.out_max_val = p.out_max_val
        self.has_axis = p.HasField('axis')
        if self.top_k < 1:
            self.fail('top k must not be less than 1 (got %d)' % self.top_k)

    def reshape(self, bottom, top):
        blob = bottom[0]
        if self.has_axis:
            try:
                self.axis = blob.canonical_axis(self.param.argmax_param.axis)
            except ValueError as error:
                self.fail(str(error))
            if self.top_k > blob.shape[self.axis]:
                self.fail('top_k (%d) must be less than or equal to the dimension of the axis (%d)'
                          % (self.top_k, blob.shape[self.axis]))
            shape = list(blob.shape)
            shape[self.axis] = self.top_k
        else:
            if self.top_k > blob.count_range(1):
                self.fail('top_k (%d) must be less than or equal to the dimension of the '
                          'flattened bottom blob per instance (%d)'
                          % (self.top_k, blob.count_range(1)))
            shape = [1] * max(blob.ndim, 3)
            shape[0] = blob.shape[0]
            shape[1] = 2 if self.out_max_val else 1
            shape[2] = self.top_k
        top[0].reshape(tuple(shape))

    def forward(self, bottom, top):
        blob = bottom[0]
        if self.has_axis:
            outer = blob.count_range(0, self.axis)
            inner = blob.count_range(self.axis + 1)
            values = blob.data.reshape(outer, blob.shape[self.axis], inner)
        else:
            values = blob.data.reshape(blob.shape[0], -1, 1)
        dim = values.shape[1]
        # Rank descending by (value, index): search the reversed axis (argmax and a stable sort
        # both prefer the first of equal values there) and map back, so the later index wins ties.
        reversed_values = values[:, ::-1, :]
        if self.top_k == 1:
            order = np.argmax(reversed_values, axis=1)[:, None, :]
        else:
            order = np.argsort(-reversed_values, axis=1, kind='stable')[:, :self.top_k, :]
        indices = dim - 1 - order
        best = np.take_along_axis(values, indices, axis=1)
        out = top[0].data
        if self.has_axis:
            out.reshape(indices.shape)[...] = best if self.out_max_val else indices
        elif self.out_max_val:
            pairs = out.reshape(blob.shape[0], 2, self.top_k)
            pairs[:, 0, :] = indices[:, :, 0]
            pairs[:, 1, :] = best[:, :, 0]
        else:
            out.reshape(blob.shape[0], self.top_k)[...] = indices[:, :, 0]

    def backward(self, top, propagate_down, bottom):
        if any(propagate_down):
            self.fail('ArgMax has no backward; do not ask for gradients through it')
