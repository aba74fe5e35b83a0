"""LRN, local response normalization (Caffe's lrn_layer.cpp), on 4-D (N, C, H, W) blobs.

The rules that are easy to get wrong, all Caffe's:

* ACROSS_CHANNELS: ``scale = k + alpha/local_size * sum(x**2)`` over the ``local_size`` channels
  centred on c (zero beyond the edges): alpha is divided by the window size.
* WITHIN_CHANNEL: Caffe composes it from Split, Power, AVE Pooling (pad ``(local_size-1)/2``) and
  Eltwise, so ``scale = 1 + alpha * mean(x**2)`` over the local_size x local_size window *counting
  the zero padding* (always local_size**2 cells), and ``k`` is ignored (the shift is fixed at 1).
* ``y = x * scale**-beta``; local_size must be odd.

In-place LRN is refused: Caffe's CPU forward overwrites the input with ``scale**-beta`` before
multiplying by it, so an in-place LRN there silently computes the wrong thing.
"""
from cct.layers.base import Layer, register
from cct.layers.geometry import check_int_fields
from cct.proto import caffe_pb2

ACROSS_CHANNELS = caffe_pb2.LRNParameter.ACROSS_CHANNELS
WITHIN_CHANNEL = caffe_pb2.LRNParameter.WITHIN_CHANNEL


@register('LRN')
class LRNLayer(Layer):
    num_bottom = 1
    num_top = 1
    inplace = False
    primitives = ('lrn_plan', 'lrn_forward', 'lrn_backward')

    def setup(self, bottom, top):
        p = self.param.lrn_param
        if p.local_size % 2 != 1:
            self.fail('LRN only supports odd values for local_size (got %d)' % p.local_size)
        check_int_fields(self.describe(), (('local_size', (p.local_size,)),))
        self.size = p.local_size
        # Caffe keeps these as Dtype members: float32 nets compute with float32 constants.
        as_dtype = self.dtype.type
        self.alpha, self.beta, self.k = (float(as_dtype(v)) for v in (p.alpha, p.beta, p.k))
        self.region = p.norm_region
        if self.region not in (ACROSS_CHANNELS, WITHIN_CHANNEL):
            self.fail('unknown normalization region %d' % self.region)

    def reshape(self, bottom, top):
        if bottom[0].ndim != 4:
            self.fail('input must have 4 axes, corresponding to (num, channels, height, width); '
                      'got shape %s' % (bottom[0].shape,))
        top[0].reshape(bottom[0].shape)
        plan = getattr(self, 'plan', None)
        if plan is None or plan.shape != bottom[0].shape:
            self.plan = self.device.lrn_plan(
                'across' if self.region == ACROSS_CHANNELS else 'within', self.size, self.alpha,
                self.beta, self.k, bottom[0].shape, self.dtype)

    def forward(self, bottom, top):
        self.device.lrn_forward(self.plan, bottom[0].dev_data, top[0].dev_data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        self.device.lrn_backward(self.plan, bottom[0].dev_data, top[0].dev_data,
                                 top[0].dev_diff, bottom[0].dev_diff)
