"""Cross-entropy losses on given probabilities or logits: SigmoidCrossEntropyLoss and
MultinomialLogisticLoss (Caffe's sigmoid_cross_entropy_loss_layer.cpp and
multinomial_logistic_loss_layer.cpp).

Easy to get wrong, all as Caffe does it. SigmoidCrossEntropyLoss takes logits x and targets t of the
same count and sums the stable form -[x (t - [x >= 0]) - log(1 + exp(x - 2 x [x >= 0]))]; targets
whose int cast equals ``ignore_label`` are skipped and get zero gradient; its *default normalization
is BATCH_SIZE* (not VALID) unless ``normalization`` (or the deprecated ``normalize``) is set, and
VALID counts the non-ignored targets. MultinomialLogisticLoss takes probabilities (no softmax inside)
and is -sum(log(max(p[label], 1e-20))) / N.
"""
import numpy as np

from cct.layers.base import register
from cct.layers.loss import LossLayer, Norm, batch_normalizer, normalization_mode

LOG_THRESHOLD = 1e-20  # Caffe's kLOG_THRESHOLD


def checked_labels(layer, values, num_classes, ignore_label=None):
    """Integer labels from float ``values`` and the mask of non-ignored ones; out-of-range raises."""
    labels = values.astype(np.int64)
    valid = np.ones(labels.shape, bool) if ignore_label is None else labels != ignore_label
    bad = valid & ((labels < 0) | (labels >= num_classes))
    if bad.any():
        layer.fail('label %d out of range [0, %d) at position %d'
                   % (labels[bad][0], num_classes, int(np.flatnonzero(bad.reshape(-1))[0])))
    return labels, valid


@register('SigmoidCrossEntropyLoss')
class SigmoidCrossEntropyLossLayer(LossLayer):
    primitives = ('empty', 'sigmoid_cross_entropy', 'fill', 'copy', 'axpby', 'mask_select',
                  'to_host', 'scale')

    def setup(self, bottom, top):
        loss_param = self.param.loss_param
        self.ignore_label = loss_param.ignore_label if loss_param.HasField('ignore_label') else None
        self.mode = normalization_mode(loss_param, default=Norm.BATCH_SIZE)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if bottom[0].count != bottom[1].count:
            self.fail('SIGMOID_CROSS_ENTROPY_LOSS layer inputs must have the same count '
                      '(%s vs %s)' % (bottom[0].shape, bottom[1].shape))
        self.outer = bottom[0].shape[0] if bottom[0].ndim else 1
        self.inner = bottom[0].count_range(1)
        if getattr(self, 'sigmoid', None) is None or self.sigmoid.size != bottom[0].count:
            self.sigmoid = self.device.empty((bottom[0].count,), self.dtype)
            self.valid = self.device.empty((bottom[0].count,), np.int32)

    def forward(self, bottom, top):
        loss, valid_count = self.device.sigmoid_cross_entropy(
            bottom[0].dev_data, bottom[1].dev_data, self.sigmoid, self.valid, self.ignore_label)
        self.normalizer = batch_normalizer(self, self.mode, self.outer, self.inner, valid_count)
        self.device.fill(top[0].dev_data, loss / self.normalizer)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            self.fail('cannot backpropagate to label inputs')
        if not propagate_down[0]:
            return
        device = self.device
        grad = bottom[0].dev_diff
        device.copy(self.sigmoid, grad)
        device.axpby(-1.0, bottom[1].dev_data, 1.0, grad)
        if self.ignore_label is not None:
            device.mask_select(grad, self.valid, 1, grad)
        weight = device.to_host(top[0].dev_diff).reshape(-1)[0]
        device.scale(grad, weight / self.normalizer, grad)


@register('MultinomialLogisticLoss')
class MultinomialLogisticLossLayer(LossLayer):
    # Caffe has no GPU code for this layer: in GPU mode it runs its CPU code on synced host
    # arrays, and so does cct on any device.
    host_layer = True

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        if any(bottom[1].legacy_shape(axis) != 1 for axis in (1, 2, 3)):
            self.fail('the label bottom must be (N) or (N, 1, 1, 1), got shape %s'
                      % (bottom[1].shape,))
        self.num = bottom[0].num
        self.dim = bottom[0].count // self.num

    def _picked(self, bottom):
        probs = bottom[0].data.reshape(self.num, self.dim)
        labels, _ = checked_labels(self, bottom[1].data.reshape(self.num), self.dim)
        rows = np.arange(self.num)
        return rows, labels, np.maximum(probs[rows, labels], self.dtype.type(LOG_THRESHOLD))

    def forward(self, bottom, top):
        _, _, picked = self._picked(bottom)
        self.divisor = self.whole_batch_sum(self.num)
        top[0].data[...] = -np.log(picked).sum() / self.divisor

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            self.fail('cannot backpropagate to label inputs')
        if not propagate_down[0]:
            return
        rows, labels, picked = self._picked(bottom)
        grad = bottom[0].diff.reshape(self.num, self.dim)
        grad[...] = 0
        grad[rows, labels] = -top[0].diff.reshape(-1)[0] / self.divisor / picked
