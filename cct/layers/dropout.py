"""Dropout (Caffe's dropout_layer.cpp): in TRAIN, y = x * mask / (1 - ratio) with mask ~ Bernoulli(1 -
ratio) ("inverted" dropout: the scaling happens at train time); in TEST, y = x. Backward reuses the
mask and scale."""
import numpy as np

from cct.layers.base import Layer, register
from cct.proto import caffe_pb2


@register('Dropout')
class DropoutLayer(Layer):
    num_bottom = 1
    num_top = 1
    primitives = ('copy', 'dropout_mask', 'masked_scale')

    def setup(self, bottom, top):
        ratio = np.float32(self.param.dropout_param.dropout_ratio)
        # Caffe only DCHECKs the range; release builds run ratio 0 as the identity, which nets
        # use to switch dropout off. Ratio 1 would scale by infinity.
        if not 0 <= ratio < 1:
            self.fail('dropout_ratio must be in [0, 1), got %g' % ratio)
        self.ratio = float(ratio)
        self.scale = self.dtype.type(1.0 / (1.0 - float(ratio)))

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)
        if getattr(self, 'mask', None) is None or self.mask.size != bottom[0].count:
            self.mask = self.device.empty((bottom[0].count,), np.uint8)

    def forward(self, bottom, top):
        if self.phase != caffe_pb2.TRAIN:
            if top[0] is not bottom[0]:
                self.device.copy(bottom[0].dev_data, top[0].dev_data)
            return
        self.device.dropout_mask(self.mask, self.ratio)
        self.device.masked_scale(bottom[0].dev_data, self.mask, top[0].dev_data, self.scale)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self.phase != caffe_pb2.TRAIN:
            if top[0] is not bottom[0]:
                self.device.copy(top[0].dev_diff, bottom[0].dev_diff)
            return
        self.device.masked_scale(top[0].dev_diff, self.mask, bottom[0].dev_diff, self.scale)
