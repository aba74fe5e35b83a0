"""Slice (Caffe's slice_layer.cpp): cut one bottom into several tops along ``axis``.

Easy to get wrong, all as Caffe does it: ``slice_point`` lists the cut positions (exactly one fewer
than the tops, each strictly greater than the one before and than 0); without it the axis is split
into equal parts and the number of tops must divide it. ``slice_dim`` is the deprecated spelling of
the axis (non-negative only) and cannot be combined with ``axis``. With a single top, the top shares
the bottom's data and diff.
"""
from cct.layers.base import Layer, register


@register('Slice')
class SliceLayer(Layer):
    num_bottom = 1
    min_top = 1
    primitives = ('strided_copy',)

    def setup(self, bottom, top):
        p = self.param.slice_param
        if p.HasField('axis') and p.HasField('slice_dim'):
            self.fail('either axis or slice_dim should be specified; not both')
        self.slice_points = list(p.slice_point)

    def _axis(self, blob):
        p = self.param.slice_param
        if p.HasField('slice_dim'):
            if p.slice_dim >= blob.ndim:
                self.fail('slice_dim %d out of range for a %d-D bottom' % (p.slice_dim, blob.ndim))
            return p.slice_dim
        try:
            return blob.canonical_axis(p.axis)
        except ValueError as error:
            self.fail(str(error))

    def _sizes(self, extent, num_top):
        if not self.slice_points:
            if extent % num_top:
                self.fail('number of top blobs (%d) should evenly divide input slice axis (%d)'
                          % (num_top, extent))
            return [extent // num_top] * num_top
        if len(self.slice_points) != num_top - 1:
            self.fail('%d slice_point(s) given for %d tops; give exactly one fewer than the tops'
                      % (len(self.slice_points), num_top))
        if num_top > extent:
            self.fail('%d tops cannot slice an axis of size %d' % (num_top, extent))
        bounds = [0] + self.slice_points + [extent]
        for previous, point in zip(bounds[:-2], bounds[1:-1]):
            if point <= previous:
                self.fail('slice points must be strictly increasing and positive: %s'
                          % self.slice_points)
        if bounds[-2] > extent:
            self.fail('slice point %d is beyond the slice axis (size %d)' % (bounds[-2], extent))
        return [end - start for start, end in zip(bounds[:-1], bounds[1:])]

    def reshape(self, bottom, top):
        self.axis = self._axis(bottom[0])
        shape = bottom[0].shape
        self.sizes = self._sizes(shape[self.axis], len(top))
        self.outer = bottom[0].count_range(0, self.axis)
        self.inner = bottom[0].count_range(self.axis + 1)
        for blob, size in zip(top, self.sizes):
            blob.reshape(shape[:self.axis] + (size,) + shape[self.axis + 1:])
        if len(top) == 1:
            top[0].share_data(bottom[0])
            top[0].share_diff(bottom[0])

    def shares_diffs(self):
        return len(self.param.top) == 1

    def _blocks(self, top):
        """(blob, values per outer row, offset in the bottom's row, the bottom's row)."""
        row = sum(self.sizes) * self.inner
        offset = 0
        for blob, size in zip(top, self.sizes):
            yield blob, size * self.inner, offset, row
            offset += size * self.inner

    def forward(self, bottom, top):
        if len(top) == 1:
            return
        whole = bottom[0].dev_data
        for blob, width, offset, row in self._blocks(top):
            self.device.strided_copy(whole, blob.dev_data, self.outer, width, row, offset, width,
                                     0)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0] or len(top) == 1:
            return
        whole = bottom[0].dev_diff
        for blob, width, offset, row in self._blocks(top):
            self.device.strided_copy(blob.dev_diff, whole, self.outer, width, width, 0, row,
                                     offset)
