"""Accuracy (Caffe's accuracy_layer.cpp): the fraction of positions whose true class is in the top_k.

A prediction is correct when fewer than ``top_k`` classes score *at least* the true class's score
(the true class counts itself), so a tie counts against. Positions with ``ignore_label`` are left
out of the denominator; the result is 0 when no position is valid. An optional second top gives the
per-class accuracy (0 for classes absent from the batch). No backward.
"""
import numpy as np

from cct.layers.base import Layer, register


@register('Accuracy')
class AccuracyLayer(Layer):
    # Counts on the host, as Caffe's CPU Accuracy does (its top is a few values).
    host_layer = True
    num_bottom = 2
    min_top = 1
    max_top = 2
    whole_batch_tops = (0, 1)

    def setup(self, bottom, top):
        p = self.param.accuracy_param
        self.top_k = p.top_k
        self.ignore_label = p.ignore_label if p.HasField('ignore_label') else None

    def reshape(self, bottom, top):
        if self.top_k > bottom[0].count // max(bottom[1].count, 1):
            self.fail('top_k (%d) must be less than or equal to the number of classes (%d)'
                      % (self.top_k, bottom[0].count // max(bottom[1].count, 1)))
        self.axis = bottom[0].canonical_axis(self.param.accuracy_param.axis)
        self.outer = bottom[0].count_range(0, self.axis)
        self.inner = bottom[0].count_range(self.axis + 1)
        self.classes = bottom[0].shape[self.axis]
        if self.outer * self.inner != bottom[1].count:
            self.fail('number of labels must match number of predictions (predictions %s, '
                      'labels %s)' % (bottom[0].shape, bottom[1].shape))
        top[0].reshape(())
        if len(top) > 1:
            top[1].reshape(self.classes)

    def forward(self, bottom, top):
        scores = bottom[0].data.reshape(self.outer, self.classes, self.inner)
        labels = bottom[1].data.reshape(self.outer, self.inner).astype(np.int64)
        valid = np.ones(labels.shape, bool) if self.ignore_label is None else \
            labels != self.ignore_label
        bad = valid & ((labels < 0) | (labels >= self.classes))
        if bad.any():
            self.fail('label %d out of range [0, %d)' % (labels[bad][0], self.classes))
        safe = np.where(valid, labels, 0)
        true_scores = np.take_along_axis(scores, safe[:, None, :], axis=1)
        at_least = (scores >= true_scores).sum(axis=1)
        correct = (at_least <= self.top_k) & valid
        # Split across devices, each share divides by the whole batch's counts, so that the
        # shares' accuracies add up to the whole batch's.
        count = self.whole_batch_sum(int(valid.sum()))
        top[0].data[...] = correct.sum() / count if count else 0
        if len(top) > 1:
            seen = self.whole_batch_sum(np.bincount(labels[valid], minlength=self.classes))
            hits = np.bincount(labels[correct], minlength=self.classes)
            top[1].data[...] = np.where(seen > 0, hits / np.maximum(seen, 1), 0)

    def backward(self, top, propagate_down, bottom):
        if any(propagate_down):
            self.fail('Accuracy has no backward; do not ask for gradients through it')
