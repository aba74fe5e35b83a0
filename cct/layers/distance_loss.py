"""Distance losses: EuclideanLoss and ContrastiveLoss (Caffe's euclidean_loss_layer.cpp and
contrastive_loss_layer.cpp).

Easy to get wrong, all as Caffe does it. EuclideanLoss is sum((a - b)^2) / (2N) with N the first
dimension; it backpropagates to *both* bottoms (b gets the negated gradient), and force_backward
reaches both. ContrastiveLoss takes two (N, C[, 1, 1]) feature blobs and a (N[, 1, 1, 1]) similarity
blob (cast to int: non-zero means similar) and is sum(y d^2 + (1 - y) max(margin - d, 0)^2) / (2N)
with d the Euclidean distance; ``legacy_version`` uses max(margin - d^2, 0) instead of the squared
hinge on d. The dissimilar-pair gradient divides by d + 1e-4, as Caffe's does, to stay finite at d = 0.
"""
import numpy as np

from cct.layers.base import register
from cct.layers.loss import LossLayer


@register('EuclideanLoss')
class EuclideanLossLayer(LossLayer):
    primitives = ('empty', 'copy', 'axpby', 'dot', 'fill', 'to_host', 'scale')

    def allow_force_backward(self, bottom_index):
        return True

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[0].count_range(1) != bottom[1].count_range(1):
            self.fail('inputs must have the same dimension: %s vs %s'
                      % (bottom[0].shape, bottom[1].shape))
        self.num = bottom[0].num
        difference = getattr(self, 'difference', None)
        if difference is None or difference.shape != bottom[0].shape:
            self.difference = self.device.empty(bottom[0].shape, self.dtype)

    def forward(self, bottom, top):
        device = self.device
        device.copy(bottom[0].dev_data, self.difference)
        device.axpby(-1.0, bottom[1].dev_data, 1.0, self.difference)
        # Caffe's dot product, divided in its own type.
        squares = self.dtype.type(device.dot(self.difference, self.difference))
        self.divisor = self.whole_batch_sum(self.num)
        device.fill(top[0].dev_data, squares / self.divisor / 2)

    def backward(self, top, propagate_down, bottom):
        weight = self.device.to_host(top[0].dev_diff).reshape(-1)[0]
        for i, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[i]:
                self.device.scale(self.difference, sign * weight / self.divisor, bottom[i].dev_diff)


@register('ContrastiveLoss')
class ContrastiveLossLayer(LossLayer):
    num_bottom = 3
    # The (N, C) differences stay on the device; the N squared distances come to the host, where
    # the loss (as Caffe's Forward_gpu does) and each pair's gradient coefficient are finished.
    primitives = ('empty', 'copy', 'axpby', 'dot_rows', 'to_host', 'from_host', 'fill',
                  'channel_op')

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2

    def setup(self, bottom, top):
        p = self.param.contrastive_loss_param
        self.margin = p.margin
        self.legacy = p.legacy_version

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        first, second, similar = bottom
        if first.channels != second.channels:
            self.fail('both feature bottoms need the same channels: %s vs %s'
                      % (first.shape, second.shape))
        for i, blob in enumerate(bottom):
            singletons = (2, 3) if i < 2 else (1, 2, 3)
            if any(blob.legacy_shape(axis) != 1 for axis in singletons):
                self.fail('bottom %d must be %s, got shape %s' % (
                    i, '(N, C) or (N, C, 1, 1)' if i < 2 else '(N) or (N, 1, 1, 1)', blob.shape))
        self.num = first.num
        self.channels = first.channels
        difference = getattr(self, 'difference', None)
        if difference is None or difference.shape != (self.num, self.channels):
            device = self.device
            self.difference = device.empty((self.num, self.channels), self.dtype)
            self.distances = device.empty((self.num,), self.dtype)
            self.coefficients = device.empty((self.num,), self.dtype)

    def forward(self, bottom, top):
        device = self.device
        device.copy(bottom[0].dev_data, self.difference)
        device.axpby(-1.0, bottom[1].dev_data, 1.0, self.difference)
        device.dot_rows(self.difference, self.difference, self.distances)
        self.dist_sq = device.to_host(self.distances)
        labels = device.to_host(bottom[2].dev_data)
        self.similar = labels.reshape(self.num).astype(np.int64) != 0
        if self.legacy:
            dissimilar = np.maximum(self.margin - self.dist_sq, 0)
        else:
            dissimilar = np.maximum(self.margin - np.sqrt(self.dist_sq), 0) ** 2
        per_pair = np.where(self.similar, self.dist_sq, dissimilar)
        self.divisor = self.whole_batch_sum(self.num)
        device.fill(top[0].dev_data, per_pair.sum() / self.divisor / 2)

    def backward(self, top, propagate_down, bottom):
        device = self.device
        weight = device.to_host(top[0].dev_diff).reshape(-1)[0]
        for i, sign in ((0, 1.0), (1, -1.0)):
            if not propagate_down[i]:
                continue
            alpha = sign * weight / self.divisor
            if self.legacy:
                shortfall = self.margin - self.dist_sq
                beta = np.full_like(shortfall, -alpha)
            else:
                dist = np.sqrt(self.dist_sq)
                shortfall = self.margin - dist
                beta = -alpha * shortfall / (dist + self.dtype.type(1e-4))
            scale = np.where(self.similar, alpha, np.where(shortfall > 0, beta, 0))
            device.from_host(scale.astype(self.dtype, copy=False), out=self.coefficients)
            # Row n of the difference times its pair's coefficient.
            device.channel_op('mul', self.difference, self.coefficients, bottom[i].dev_diff,
                              self.channels)
        if len(propagate_down) > 2 and propagate_down[2]:
            self.fail('cannot backpropagate to the similarity input (bottom 2)')
