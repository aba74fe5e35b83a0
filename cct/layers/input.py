"""Input (Caffe's input_layer.cpp): tops shaped by ``input_param.shape`` (once for all tops, or once
per top) and filled from outside; they become the net's inputs. Reshape keeps whatever shape the
user gave the blobs since."""
from cct.layers.base import Layer, register


@register('Input')
class InputLayer(Layer):
    # Its tops are filled by scripts, on the host.
    host_layer = True
    num_bottom = 0
    min_top = 1

    def setup(self, bottom, top):
        shapes = self.param.input_param.shape
        if len(shapes) not in (0, 1, len(top)):
            self.fail("must specify 'shape' once, once per top blob, or not at all: %d tops vs. "
                      '%d shapes' % (len(top), len(shapes)))
        for i, blob in enumerate(top):
            if len(shapes):
                blob.reshape(tuple(shapes[0 if len(shapes) == 1 else i].dim))

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass
