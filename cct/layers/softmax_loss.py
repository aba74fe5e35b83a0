"""SoftmaxWithLoss (Caffe's softmax_loss_layer.cpp): softmax along ``softmax_param.axis`` followed by
the multinomial logistic loss, -sum(log(max(p[label], FLT_MIN))) / normalizer.

Labels count one per (outer, inner) position (N*H*W for axis 1 of an N,C,H,W input). Positions whose
label equals ``loss_param.ignore_label`` add no loss and get zero gradient; the normalizer follows
``loss_param.normalization`` (default VALID: the non-ignored count). An optional second top outputs
the probabilities; with two tops both loss weights must be given.
"""
import numpy as np

from cct.layers.base import register
from cct.layers.loss import LossLayer, batch_normalizer, normalization_mode



@register('SoftmaxWithLoss')
class SoftmaxWithLossLayer(LossLayer):
    num_top = None
    min_top = 1
    max_top = 2
    primitives = ('empty', 'softmax', 'softmax_loss', 'softmax_loss_backward', 'fill', 'copy',
                  'to_host', 'scale')

    def setup(self, bottom, top):
        loss_param = self.param.loss_param
        self.ignore_label = loss_param.ignore_label if loss_param.HasField('ignore_label') else None
        self.mode = normalization_mode(loss_param)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        self.axis = bottom[0].canonical_axis(self.param.softmax_param.axis)
        shape = bottom[0].shape
        self.outer = bottom[0].count_range(0, self.axis)
        self.inner = bottom[0].count_range(self.axis + 1)
        self.classes = shape[self.axis]
        if self.outer * self.inner != bottom[1].count:
            self.fail('number of labels must match number of predictions; e.g., if softmax axis '
                      '== 1 and prediction shape is (N, C, H, W), label count (number of labels) '
                      'must be N*H*W, with integer values in {0, 1, ..., C-1} (predictions %s, '
                      'labels %s)' % (shape, bottom[1].shape))
        if getattr(self, 'prob', None) is None or self.prob.shape != shape:
            self.prob = self.device.empty(shape, self.dtype)
        if len(top) > 1:
            top[1].reshape(shape)

    def _labels(self, bottom):
        labels = bottom[1].data.reshape(self.outer, self.inner).astype(np.int64)
        valid = np.ones(labels.shape, bool) if self.ignore_label is None else \
            labels != self.ignore_label
        bad = valid & ((labels < 0) | (labels >= self.classes))
        if bad.any():
            self.fail('label %d out of range [0, %d) at position %d'
                      % (labels[bad][0], self.classes, int(np.flatnonzero(bad)[0])))
        return labels, valid

    def forward(self, bottom, top):
        device = self.device
        device.softmax(bottom[0].dev_data, self.prob, self.outer, self.classes, self.inner)
        self._labels(bottom)
        loss, count = device.softmax_loss(self.prob, bottom[1].dev_data, self.outer,
                                          self.classes, self.inner, self.ignore_label)
        count = count if self.ignore_label is not None else -1
        self.normalizer = batch_normalizer(self, self.mode, self.outer, self.inner, count)
        device.fill(top[0].dev_data, loss / self.normalizer)
        if len(top) == 2:
            device.copy(self.prob, top[1].dev_data)

    def backward(self, top, propagate_down, bottom):
        if len(propagate_down) > 1 and propagate_down[1]:
            self.fail('cannot backpropagate to label inputs')
        if not propagate_down[0]:
            return
        device = self.device
        diff = bottom[0].dev_diff
        self._labels(bottom)
        device.softmax_loss_backward(self.prob, bottom[1].dev_data, diff, self.outer,
                                     self.classes, self.inner, self.ignore_label)
        # The forward's normaliser: the labels have not changed since (and, with the batch split
        # across devices, it is the whole batch's, which would cost another synchronisation).
        weight = device.to_host(top[0].dev_diff).reshape(-1)[0]
        device.scale(diff, weight / self.normalizer, diff)
