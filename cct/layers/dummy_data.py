"""DummyData (Caffe's dummy_data_layer.cpp): tops of given shapes filled by fillers.

The rules that are easy to get wrong: shapes come from ``shape`` (once for all tops or once per top)
or the legacy num/channels/height/width lists (each once or once per top; not both styles);
``data_filler`` is given 0 times (constant 0), once for all tops, or once per top. Tops filled by a
``constant`` filler are filled once at setup; the others are refilled at every forward.
"""
from cct.fillers import fill
from cct.layers.base import Layer, register
from cct.proto import caffe_pb2


@register('DummyData')
class DummyDataLayer(Layer):
    # Fills on the host, once per forward, as its fillers do.
    host_layer = True
    num_bottom = 0
    min_top = 1

    def setup(self, bottom, top):
        param = self.param.dummy_data_param
        num_top = len(top)
        fillers = list(param.data_filler)
        if len(fillers) not in (0, 1, num_top):
            self.fail('Number of data fillers must be 0, 1 or equal to the number of tops: %d; '
                      'you specified %d data fillers.' % (num_top, len(fillers)))
        legacy = [param.num, param.channels, param.height, param.width]
        if any(len(field) for field in legacy):
            if len(param.shape):
                self.fail('Both shape and legacy fields were specified')
            for name, field in zip(('num', 'channels', 'height', 'width'), legacy):
                if len(field) not in (1, num_top):
                    self.fail("Must specify '%s' once, or once per top blob (%d); specified %d."
                              % (name, num_top, len(field)))
            shapes = [tuple(field[0 if len(field) == 1 else i] for field in legacy)
                      for i in range(num_top)]
        else:
            if len(param.shape) not in (1, num_top):
                self.fail("Must specify 'shape' once, or once per top blob (%d); specified %d."
                          % (num_top, len(param.shape)))
            shapes = [tuple(param.shape[0 if len(param.shape) == 1 else i].dim)
                      for i in range(num_top)]
        if not fillers:
            fillers = [caffe_pb2.FillerParameter(type='constant', value=0)]
        self.fillers = [fillers[0 if len(fillers) == 1 else i] for i in range(num_top)]
        for i, (blob, shape, filler) in enumerate(zip(top, shapes, self.fillers)):
            blob.reshape(shape)
            if filler.type == 'constant':
                fill(blob, filler, '%s, top %d' % (self.describe(), i))
        self.refill = [filler.type != 'constant' for filler in self.fillers]

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        for i, (blob, filler, refill) in enumerate(zip(top, self.fillers, self.refill)):
            if refill:
                fill(blob, filler, '%s, top %d' % (self.describe(), i))
