"""Flatten and Reshape (Caffe's flatten_layer.cpp and reshape_layer.cpp): a new shape over the
bottom's own memory.

Easy to get wrong, all as Caffe does it: both tops share the bottom's data *and* diff (no copy in
either direction), so both refuse in-place use. Flatten merges the axes ``axis``..``end_axis``
(inclusive, negative counting from the end). Reshape replaces the axes ``axis``..``axis+num_axes``
(``num_axes: -1`` = all remaining; a negative ``axis`` counts from the end with -1 meaning "after the
last axis") by ``shape``, where 0 copies the bottom's dimension at that position and a single -1 is
inferred from the count.
"""
from cct.layers.base import Layer, register


class _SharedViewLayer(Layer):
    """A top that is the bottom's memory in another shape."""

    num_bottom = 1
    num_top = 1
    inplace = False
    primitives = ()

    def top_shape(self, bottom):
        raise NotImplementedError

    def shares_diffs(self):
        return True

    def reshape(self, bottom, top):
        shape = self.top_shape(bottom[0])
        top[0].reshape(shape)
        if top[0].count != bottom[0].count:
            self.fail('output count %d (shape %s) must match input count %d (shape %s)'
                      % (top[0].count, shape, bottom[0].count, bottom[0].shape))
        top[0].share_data(bottom[0])
        top[0].share_diff(bottom[0])

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass


@register('Flatten')
class FlattenLayer(_SharedViewLayer):
    def top_shape(self, bottom):
        p = self.param.flatten_param
        try:
            start = bottom.canonical_axis(p.axis)
            end = bottom.canonical_axis(p.end_axis)
        except ValueError as error:
            self.fail(str(error))
        shape = bottom.shape
        return shape[:start] + (bottom.count_range(start, end + 1),) + shape[end + 1:]


@register('Reshape')
class ReshapeLayer(_SharedViewLayer):
    def setup(self, bottom, top):
        dims = list(self.param.reshape_param.shape.dim)
        self.copy_axes = [i for i, d in enumerate(dims) if d == 0]
        inferred = [i for i, d in enumerate(dims) if d == -1]
        if len(inferred) > 1:
            self.fail('new shape contains multiple -1 dims; at most a single (1) value of -1 may '
                      'be specified (shape %s)' % dims)
        bad = [d for d in dims if d < -1]
        if bad:
            self.fail('shape dims must be positive, 0 (copy) or -1 (infer), got %d' % bad[0])
        self.inferred_axis = inferred[0] if inferred else None
        self.dims = dims
        self.constant_count = 1
        for d in dims:
            if d > 0:
                self.constant_count *= d

    def top_shape(self, bottom):
        p = self.param.reshape_param
        ndim = bottom.ndim
        start = p.axis if p.axis >= 0 else ndim + p.axis + 1
        if not 0 <= start <= ndim:
            self.fail('axis %d out of range for %d-D input blob' % (p.axis, ndim))
        if p.num_axes < -1:
            self.fail('num_axes must be >= 0, or -1 for all (got %d)' % p.num_axes)
        end = ndim if p.num_axes == -1 else start + p.num_axes
        if end > ndim:
            self.fail('end_axis = axis + num_axes = %d is out of range for %d-D input blob'
                      % (end, ndim))
        shape = list(bottom.shape[:start]) + list(self.dims) + list(bottom.shape[end:])
        for i in self.copy_axes:
            if start + i >= ndim:
                self.fail('new shape contains a 0, but there was no corresponding bottom axis '
                          'to copy (shape dim %d, %d-D bottom)' % (i, ndim))
            shape[start + i] = bottom.shape[start + i]
        if self.inferred_axis is not None:
            explicit = self.constant_count * bottom.count_range(0, start) * \
                bottom.count_range(end)
            for i in self.copy_axes:
                explicit *= shape[start + i]
            if explicit == 0 or bottom.count % explicit:
                self.fail('bottom count (%d) must be divisible by the product of the specified '
                          'dimensions (%d)' % (bottom.count, explicit))
            shape[start + self.inferred_axis] = bottom.count // explicit
        return tuple(shape)
