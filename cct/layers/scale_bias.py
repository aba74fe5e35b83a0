"""Scale and Bias (Caffe's scale_layer.cpp and bias_layer.cpp): multiply by, or add, a blob that
broadcasts over bottom[0] starting at ``axis``.

Rules that are easy to get wrong:
* The operand is a learned param blob, or bottom[1] when there are two bottoms (then nothing is
  learned for it and its gradient is written, not accumulated).
* Its shape is bottom[0].shape[axis : axis + num_axes]; num_axes −1 runs to the last axis and 0
  makes it a scalar (then the axis is irrelevant and treated as 0).
* Scale's filler defaults to constant 1 (identity), Bias's to FillerParameter's constant 0.
* Scale with bias_term adds a bias param blob after the scale (bias_filler), shaped like the scale;
  with two bottoms the bias is the only param blob.
* Scale in-place keeps a copy of the bottom for the scale gradient.
* Caffe accumulates the learned scale's gradient except when the outer dimension (the product of
  the axes before ``axis``) is 1 and either the scale is element-wise or has more than one element;
  then it overwrites the param diff (which breaks iter_size > 1). cct does the same.
"""
from cct.layers.base import Layer, register
from cct.proto import caffe_pb2


class _BroadcastLayer(Layer):
    """What Scale and Bias share: the operand's shape, and the (outer, dim, inner) view of the
    bottom against which the operand broadcasts."""

    min_bottom = 1
    max_bottom = 2
    num_top = 1
    what = 'operand'
    primitives = ('channel_op', 'channel_sum', 'copy', 'mul', 'empty', 'scratch')

    def _axis(self, blob, axis):
        try:
            return blob.canonical_axis(axis)
        except ValueError as error:
            self.fail(str(error))

    def operand_shape(self, bottom, num_axes):
        """The learned operand's shape for bottom[0], ``axis`` and ``num_axes`` (Caffe's setup)."""
        param = self.broadcast_param
        axis = self._axis(bottom[0], param.axis)
        if num_axes < -1:
            self.fail('num_axes must be non-negative, or -1 to extend to the end of bottom[0] '
                      '(got %d)' % num_axes)
        if num_axes >= 0 and bottom[0].ndim < axis + num_axes:
            self.fail("%s blob's shape extends past bottom[0]'s shape %s when applied starting "
                      'with bottom[0] axis = %d' % (self.what, bottom[0].shape, axis))
        return bottom[0].shape[axis:] if num_axes == -1 else bottom[0].shape[axis:axis + num_axes]

    def broadcast_dims(self, bottom, operand):
        """Check ``operand`` against bottom[0]; return (outer, dim, inner)."""
        shape = bottom[0].shape
        axis = 0 if operand.ndim == 0 else self._axis(bottom[0], self.broadcast_param.axis)
        if len(shape) < axis + operand.ndim:
            self.fail("%s blob's shape %s extends past bottom[0]'s shape %s when applied "
                      'starting with bottom[0] axis = %d'
                      % (self.what, operand.shape, shape, axis))
        if shape[axis:axis + operand.ndim] != operand.shape:
            self.fail('dimension mismatch between bottom[0] shape %s (from axis %d) and %s '
                      'shape %s' % (shape, axis, self.what, operand.shape))
        outer = bottom[0].count_range(0, axis)
        return outer, operand.count, bottom[0].count_range(axis + operand.ndim)

    def reduce_into(self, values, blob, accumulate):
        """Sum ``values`` as (outer, dim, inner) over outer and inner into ``blob``'s diff, in
        the dtype as Caffe's GEMVs do."""
        self.device.channel_sum(values, blob.dev_diff.reshape(-1), self.inner, accumulate,
                                wide=False)


@register('Bias')
class BiasLayer(_BroadcastLayer):
    """y = x + b, b broadcast from ``axis``."""

    what = 'bias'

    @property
    def broadcast_param(self):
        return self.param.bias_param

    def setup(self, bottom, top):
        if len(bottom) == 1:
            param = self.param.bias_param
            self.make_param_blobs([(self.operand_shape(bottom, param.num_axes), param.filler)])

    def reshape(self, bottom, top):
        bias = bottom[1] if len(bottom) > 1 else self.blobs[0]
        self.outer, self.dim, self.inner = self.broadcast_dims(bottom, bias)
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        bias = (bottom[1] if len(bottom) > 1 else self.blobs[0]).dev_data
        self.device.channel_op('add', bottom[0].dev_data, bias.reshape(-1), top[0].dev_data,
                               self.inner)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0] and top[0] is not bottom[0]:
            self.device.copy(top[0].dev_diff, bottom[0].dev_diff)
        learned = len(bottom) == 1
        if (learned and self.param_propagate_down[0]) or (not learned and propagate_down[1]):
            target = self.blobs[0] if learned else bottom[1]
            self.reduce_into(top[0].dev_diff, target, accumulate=learned)


@register('Scale')
class ScaleLayer(_BroadcastLayer):
    """y = x ⊙ s (+ b), s and b broadcast from ``axis``."""

    what = 'scale'

    @property
    def broadcast_param(self):
        return self.param.scale_param

    def setup(self, bottom, top):
        param = self.param.scale_param
        specs = []
        if len(bottom) == 1:
            filler = param.filler
            if not param.HasField('filler'):
                filler = caffe_pb2.FillerParameter(type='constant', value=1)
            specs.append((self.operand_shape(bottom, param.num_axes), filler))
        self.bias_term = param.bias_term
        if self.bias_term:
            # Caffe's inner Bias layer: num_axes from bottom[1] when the scale is a bottom.
            num_axes = bottom[1].ndim if len(bottom) > 1 else param.num_axes
            specs.append((self.operand_shape(bottom, num_axes), param.bias_filler))
        self.make_param_blobs(specs)
        self.bottom_copy = None
        self.batch_norm = None   # the BatchNorm this layer is fused into (cct.layers.fusion)

    def _scale(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.blobs[0]

    def reshape(self, bottom, top):
        scale = self._scale(bottom)
        self.outer, self.dim, self.inner = self.broadcast_dims(bottom, scale)
        if self.bias_term and self.blobs[-1].shape != scale.shape:
            self.fail('bias shape %s differs from scale shape %s'
                      % (self.blobs[-1].shape, scale.shape))
        top[0].reshape(bottom[0].shape)

    def overwrites_diff(self):
        """Caffe's inconsistency, kept: these shapes overwrite the learned scale's diff."""
        return self.outer == 1 and (self.inner == 1 or self.dim > 1)

    def forward(self, bottom, top):
        device = self.device
        if self.batch_norm is not None:
            self.batch_norm.fused = False   # this forward's bottom is what backward reads
        if top[0] is bottom[0]:
            # Allocated here, not at reshape: a Scale fused into a BatchNorm never needs it.
            if self.bottom_copy is None or self.bottom_copy.shape != bottom[0].shape:
                self.bottom_copy = None
                self.bottom_copy = device.empty(bottom[0].shape, self.dtype)
            device.copy(bottom[0].dev_data, self.bottom_copy)
        y = top[0].dev_data
        device.channel_op('mul', bottom[0].dev_data, self._scale(bottom).dev_data.reshape(-1), y,
                          self.inner)
        if self.bias_term:
            device.channel_op('add', y, self.blobs[-1].dev_data.reshape(-1), y, self.inner)

    def backward(self, top, propagate_down, bottom):
        device = self.device
        dy = top[0].dev_diff
        if self.bias_term and self.param_propagate_down[-1]:
            self.reduce_into(dy, self.blobs[-1], accumulate=True)
        learned = len(bottom) == 1
        scale = self._scale(bottom)
        if (learned and self.param_propagate_down[0]) or (not learned and propagate_down[1]):
            if self.batch_norm is not None and self.batch_norm.fused:
                x = self.batch_norm.normalised()   # the fused forward kept no bottom copy
            else:
                x = self.bottom_copy if top[0] is bottom[0] else bottom[0].dev_data
            product = device.scratch('scale', dy.shape, self.dtype)
            device.mul(dy, x, product)
            self.reduce_into(product, scale, accumulate=learned and not self.overwrites_diff())
        if propagate_down[0]:
            device.channel_op('mul', dy, scale.dev_data.reshape(-1), bottom[0].dev_diff,
                              self.inner)
