"""PReLU (Caffe's prelu_layer.cpp): y = max(0, x) + a_c·min(0, x) with learned slopes a, one per
channel (axis 1) or one shared scalar.

Rules that are easy to get wrong:
* The default filler is constant 0.25, not FillerParameter's constant 0.
* channel_shared makes the slope a 0-axis (scalar) blob; otherwise its shape is (channels,).
* The bottom needs at least 2 axes; everything after axis 1 is "spatial".
* The gradient at exactly x = 0 uses the slope (x <= 0), for the input and for the slope.
* In-place keeps a copy of the bottom from the forward, since the backward needs x, not y.
* The slope gradient accumulates into the param diff (BVLC master; older Caffe zeroed it first).
"""
from cct.layers.base import register
from cct.layers.neuron import NeuronLayer
from cct.proto import caffe_pb2


@register('PReLU')
class PReLULayer(NeuronLayer):
    primitives = ('prelu', 'prelu_backward', 'copy', 'empty')

    def setup(self, bottom, top):
        if bottom[0].ndim < 2:
            self.fail('Number of axes of bottom blob must be >=2, got shape %s'
                      % (bottom[0].shape,))
        param = self.param.prelu_param
        self.channel_shared = param.channel_shared
        filler = param.filler
        if not param.HasField('filler'):
            filler = caffe_pb2.FillerParameter(type='constant', value=0.25)
        shape = () if self.channel_shared else (bottom[0].shape[1],)
        self.make_param_blobs([(shape, filler)])
        self.bottom_memory = None

    def reshape(self, bottom, top):
        if bottom[0].ndim < 2:
            self.fail('Number of axes of bottom blob must be >=2, got shape %s'
                      % (bottom[0].shape,))
        if not self.channel_shared and bottom[0].shape[1] != self.blobs[0].count:
            self.fail('bottom has %d channels, the slope blob %d'
                      % (bottom[0].shape[1], self.blobs[0].count))
        top[0].reshape(bottom[0].shape)
        if top[0] is bottom[0] and (self.bottom_memory is None
                                    or self.bottom_memory.shape != bottom[0].shape):
            self.bottom_memory = self.device.empty(bottom[0].shape, self.dtype)
        # Channels on axis 1, or one shared slope over each item.
        self.inner = bottom[0].count_range(1 if self.channel_shared else 2)

    def forward(self, bottom, top):
        x = bottom[0].dev_data
        if top[0] is bottom[0]:
            self.device.copy(x, self.bottom_memory)
        self.device.prelu(x, self.blobs[0].dev_data.reshape(-1), top[0].dev_data, self.inner)

    def backward(self, top, propagate_down, bottom):
        x = self.bottom_memory if top[0] is bottom[0] else bottom[0].dev_data
        # The slope gradient first: in-place, writing the bottom diff overwrites the top diff.
        self.device.prelu_backward(
            x, self.blobs[0].dev_data.reshape(-1), top[0].dev_diff,
            bottom[0].dev_diff if propagate_down[0] else None,
            self.blobs[0].dev_diff.reshape(-1) if self.param_propagate_down[0] else None,
            self.inner)
