"""Split (Caffe's split_layer.cpp): every top shares the bottom's data; backward sums the tops'
diffs into the bottom. The net inserts these for blobs consumed more than once."""
import numpy as np

from cct.layers.base import Layer, register


@register('Split')
class SplitLayer(Layer):
    num_bottom = 1
    min_top = 1
    inplace = False

    def reshape(self, bottom, top):
        for blob in top:
            blob.reshape(bottom[0].shape)
            blob.share_data(bottom[0])

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        out = bottom[0].diff
        if len(top) == 1:
            out[...] = top[0].diff
            return
        np.add(top[0].diff, top[1].diff, out=out)
        for blob in top[2:]:
            out += blob.diff
