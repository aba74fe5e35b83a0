"""Concat (Caffe's concat_layer.cpp): bottoms joined along ``axis``; every other dimension must match.

``concat_dim`` is the deprecated spelling of a non-negative axis; giving both is an error. With a
single bottom the top shares the bottom's data and diff (no copy), as in Caffe. Backward hands each
bottom its slice of the top diff.
"""
import numpy as np

from cct.layers.base import Layer, register


@register('Concat')
class ConcatLayer(Layer):
    min_bottom = 1
    num_top = 1
    primitives = ('strided_copy',)

    def setup(self, bottom, top):
        p = self.param.concat_param
        if p.HasField('axis') and p.HasField('concat_dim'):
            self.fail('either axis or concat_dim should be specified; not both')
        if len(bottom) > 1 and top[0] is bottom[0]:
            self.fail('cannot concatenate in place (top 0 is bottom 0)')

    def _axis(self, bottom):
        p = self.param.concat_param
        if p.HasField('concat_dim'):
            # concat_dim is a uint32 that Caffe casts to int: values >= 2**31 come out negative.
            axis = int(np.uint32(p.concat_dim).astype(np.int32))
            if axis < 0:
                self.fail('casting concat_dim from uint32 to int32 produced negative result; '
                          'concat_dim must satisfy 0 <= concat_dim < 32')
            if axis >= bottom[0].ndim:
                self.fail('concat_dim %d out of range for a %d-D input' % (axis, bottom[0].ndim))
            return axis
        return bottom[0].canonical_axis(p.axis)

    def reshape(self, bottom, top):
        self.axis = axis = self._axis(bottom)
        first = bottom[0].shape
        total = 0
        for i, blob in enumerate(bottom):
            if blob.ndim != len(first):
                self.fail('all inputs must have the same number of axes: bottom 0 is %s, '
                          'bottom %d is %s' % (first, i, blob.shape))
            if blob.shape[:axis] != first[:axis] or blob.shape[axis + 1:] != first[axis + 1:]:
                self.fail('all inputs must have the same shape, except at concat_axis %d: '
                          'bottom 0 is %s, bottom %d is %s' % (axis, first, i, blob.shape))
            total += blob.shape[axis]
        top[0].reshape(first[:axis] + (total,) + first[axis + 1:])
        self.outer = bottom[0].count_range(0, axis)
        self.inner = bottom[0].count_range(axis + 1)
        if len(bottom) == 1:
            top[0].share_data(bottom[0])
            top[0].share_diff(bottom[0])

    def shares_diffs(self):
        return len(self.param.bottom) == 1

    def _blocks(self, bottom):
        """(blob, values per outer row, offset in the top's row) for each bottom."""
        row = sum(blob.shape[self.axis] for blob in bottom) * self.inner
        offset = 0
        for blob in bottom:
            width = blob.shape[self.axis] * self.inner
            yield blob, width, row, offset
            offset += width

    def forward(self, bottom, top):
        if len(bottom) == 1:
            return
        out = top[0].dev_data
        for blob, width, row, offset in self._blocks(bottom):
            self.device.strided_copy(blob.dev_data, out, self.outer, width, width, 0, row, offset)

    def backward(self, top, propagate_down, bottom):
        if len(bottom) == 1:
            return
        grads = top[0].dev_diff
        for (blob, width, row, offset), down in zip(self._blocks(bottom), propagate_down):
            if down:
                self.device.strided_copy(grads, blob.dev_diff, self.outer, width, row, offset,
                                         width, 0)
