"""Shared loss-layer rules (Caffe's loss_layer.cpp): two bottoms, a scalar top with default loss
weight 1, no gradient to the label, and the LossParameter normalization modes."""
from cct.layers.base import Layer
from cct.proto import caffe_pb2

Norm = caffe_pb2.LossParameter


class LossLayer(Layer):
    """Base of Caffe's loss layers: top 0 is a scalar whose default loss_weight is 1."""

    num_bottom = 2
    num_top = 1
    auto_top_blobs = True
    loss_layer = True
    whole_batch_tops = (0,)

    def check_batch(self, bottom):
        if bottom[0].shape[:1] != bottom[1].shape[:1]:
            self.fail('the data and label should have the same first dimension: %s vs %s'
                      % (bottom[0].shape, bottom[1].shape))

    def reshape(self, bottom, top):
        self.check_batch(bottom)
        top[0].reshape(())


def normalization_mode(loss_param, default=Norm.VALID):
    """``normalization``, else the deprecated ``normalize`` (true VALID, false BATCH_SIZE)."""
    if not loss_param.HasField('normalization') and loss_param.HasField('normalize'):
        return Norm.VALID if loss_param.normalize else Norm.BATCH_SIZE
    if not loss_param.HasField('normalization'):
        return default
    return loss_param.normalization


def normalizer(mode, outer, inner, valid_count):
    """Caffe's get_normalizer, clamped to >= 1 so an all-ignored batch does not divide by 0.

    ``valid_count`` of -1 means no label was ignored (VALID then equals FULL).
    """
    if mode == Norm.FULL:
        value = outer * inner
    elif mode == Norm.VALID:
        value = outer * inner if valid_count == -1 else valid_count
    elif mode == Norm.BATCH_SIZE:
        value = outer
    else:
        value = 1
    return max(1.0, float(value))


def batch_normalizer(layer, mode, outer, inner, valid_count):
    """``normalizer`` of the whole batch when cct.parallel splits it across devices (each share's
    loss is then its own sum over the whole batch's normaliser, and the shares' losses and
    gradients add up to the whole batch's); ``normalizer`` itself otherwise."""
    if layer.share_group is None or mode == Norm.NONE:
        return normalizer(mode, outer, inner, valid_count)
    if mode == Norm.BATCH_SIZE:
        value = outer
    elif mode == Norm.VALID and valid_count != -1:
        value = valid_count
    else:
        value = outer * inner
    return max(1.0, float(layer.whole_batch_sum(value)))
