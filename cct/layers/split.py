"""Split (Caffe's split_layer.cpp): every top shares the bottom's data; backward sums the tops'
diffs into the bottom. The net inserts these for blobs consumed more than once."""
from cct.layers.base import Layer, register


@register('Split')
class SplitLayer(Layer):
    num_bottom = 1
    min_top = 1
    inplace = False
    primitives = ('copy', 'axpby')

    def reshape(self, bottom, top):
        for blob in top:
            blob.reshape(bottom[0].shape)
            blob.share_data(bottom[0])

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        out = bottom[0].dev_diff
        rest = top[1:]
        if len(top) > 1 and self.device.supports('add'):
            # top 0 + top 1 in one pass where copy + axpby take two (the same sum).
            self.device.add(top[0].dev_diff, top[1].dev_diff, out)
            rest = top[2:]
        else:
            self.device.copy(top[0].dev_diff, out)
        for blob in rest:
            self.device.axpby(1.0, blob.dev_diff, 1.0, out)
