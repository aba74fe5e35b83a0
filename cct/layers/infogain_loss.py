"""InfogainLoss (Caffe's infogain_loss_layer.cpp): softmax along ``infogain_loss_param.axis``, then
-sum_k H[label, k] log(max(p_k, 1e-20)) / normalizer.

Easy to get wrong, all as Caffe does it (current Caffe; older releases took probabilities instead):
the softmax is internal, so the bottom holds scores; H (C x C) comes from the ``source`` binaryproto,
or from a third bottom that may change every batch; labels count one per (outer, inner) position like
SoftmaxWithLoss, with ``ignore_label`` positions skipped and zero gradient; the normalizer follows
``loss_param.normalization`` (default VALID = the non-ignored count) and the deprecated ``normalize``
is rejected. The gradient is p_k sum_j H[label, j] - H[label, k]. An optional second top gives the
probabilities. H gets no gradient.
"""
import numpy as np

from cct.io.blobproto import blobproto_to_array
from cct.layers.base import register
from cct.layers.logistic_loss import LOG_THRESHOLD, checked_labels
from cct.layers.loss import LossLayer, batch_normalizer
from cct.layers.softmax import softmax_forward
from cct.proto import caffe_pb2


@register('InfogainLoss')
class InfogainLossLayer(LossLayer):
    # Caffe has no GPU code for this layer: in GPU mode it runs its CPU code on synced host
    # arrays, and so does cct on any device.
    host_layer = True
    num_bottom = None
    min_bottom = 2
    max_bottom = 3
    num_top = None
    min_top = 1
    max_top = 2

    def allow_force_backward(self, bottom_index):
        # Caffe aborts when force_backward reaches H; cct leaves the matrix input out instead.
        return bottom_index == 0

    def setup(self, bottom, top):
        loss_param = self.param.loss_param
        self.ignore_label = loss_param.ignore_label if loss_param.HasField('ignore_label') else None
        if loss_param.HasField('normalize'):
            self.fail('normalize is deprecated. use "normalization"')
        self.mode = loss_param.normalization
        self.infogain = None
        if len(bottom) < 3:
            from cct.io.protofiles import read_binary  # cct.io imports cct.layers
            if not self.param.infogain_loss_param.HasField('source'):
                self.fail('Infogain matrix source must be specified')
            proto = read_binary(self.param.infogain_loss_param.source, caffe_pb2.BlobProto,
                                'infogain matrix')
            self.infogain = blobproto_to_array(proto, dtype=self.dtype)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        scores = bottom[0]
        try:
            self.axis = scores.canonical_axis(self.param.infogain_loss_param.axis)
        except ValueError as error:
            self.fail(str(error))
        self.outer = scores.count_range(0, self.axis)
        self.inner = scores.count_range(self.axis + 1)
        self.classes = scores.shape[self.axis]
        if self.outer * self.inner != bottom[1].count:
            self.fail('number of labels must match number of predictions; e.g., if infogain axis '
                      '== 1 and prediction shape is (N, C, H, W), label count (number of labels) '
                      'must be N*H*W, with integer values in {0, 1, ..., C-1} (predictions %s, '
                      'labels %s)' % (scores.shape, bottom[1].shape))
        matrix = self.infogain if len(bottom) < 3 else bottom[2].data
        if matrix.size != self.classes * self.classes:
            self.fail('H must be %dx%d, it holds %d values' % (
                self.classes, self.classes, matrix.size))
        if getattr(self, 'prob', None) is None or self.prob.shape != scores.shape:
            self.prob = np.empty(scores.shape, self.dtype)
        if len(top) > 1:
            top[1].reshape(scores.shape)

    def _terms(self, bottom):
        """(H, labels, valid, safe labels, count) for the current batch."""
        matrix = (self.infogain if len(bottom) < 3 else bottom[2].data)
        matrix = matrix.reshape(self.classes, self.classes)
        labels, valid = checked_labels(self, bottom[1].data.reshape(self.outer, self.inner),
                                       self.classes, self.ignore_label)
        safe = np.where(valid, labels, 0)
        return matrix, valid, safe, int(valid.sum())

    def forward(self, bottom, top):
        softmax_forward(bottom[0].data, self.prob, self.axis)
        matrix, valid, safe, count = self._terms(bottom)
        prob = self.prob.reshape(self.outer, self.classes, self.inner)
        log_prob = np.log(np.maximum(prob, self.dtype.type(LOG_THRESHOLD)))
        weights = matrix[safe].transpose(0, 2, 1) * valid[:, None, :]  # (outer, C, inner)
        loss = -np.einsum('ijk,ijk->', weights, log_prob)
        self.normalizer = batch_normalizer(self, self.mode, self.outer, self.inner, count)
        top[0].data[...] = loss / self.normalizer
        if len(top) == 2:
            top[1].data[...] = self.prob

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            self.fail('cannot backpropagate to label inputs')
        if len(propagate_down) > 2 and propagate_down[2]:
            self.fail('cannot backpropagate to infogain inputs')
        if not propagate_down[0]:
            return
        matrix, valid, safe, _ = self._terms(bottom)
        row_sums = matrix.sum(axis=1)
        prob = self.prob.reshape(self.outer, self.classes, self.inner)
        grad = bottom[0].diff.reshape(prob.shape)
        np.multiply(prob, row_sums[safe][:, None, :], out=grad)
        grad -= matrix[safe].transpose(0, 2, 1)
        grad *= valid[:, None, :]
        grad *= top[0].diff.reshape(-1)[0] / self.normalizer
