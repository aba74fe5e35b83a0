"""Pooling: MAX, AVE and STOCHASTIC (Caffe's pooling_layer.cpp and .cu), over 4-D (N, C, H, W) blobs.

Easy to get wrong, all as Caffe does it: the output size rounds *up* by default
(``round_mode: CEIL``) and, with padding, drops a last window that would start inside the padding;
MAX treats padding as absent (windows clipped to the image) and keeps the first maximum; AVE divides
by the window clipped to the padded extent, so border windows count padding cells but not cells
beyond the padding. ``global_pooling`` takes the whole plane. A second top for MAX holds each window's
argmax (flat index within the plane) as a float.

STOCHASTIC (GPU-only in Caffe, here on the CPU with Caffe's GPU semantics) takes no padding. In TRAIN
it samples one element per window with probability proportional to its (non-negative) activation,
outputs that activation and routes the gradient to it; in TEST it outputs sum(x^2)/sum(x) (0 when the
sum is not positive). Caffe's TEST backward routes through sample indices no TEST forward wrote; cct
differentiates the TEST output instead.
"""
from cct.layers.base import Layer, register
from cct.layers.geometry import check_window_reach, pool_geometry, pool_out_size
from cct.proto import caffe_pb2

MAX = caffe_pb2.PoolingParameter.MAX
AVE = caffe_pb2.PoolingParameter.AVE
STOCHASTIC = caffe_pb2.PoolingParameter.STOCHASTIC


@register('Pooling')
class PoolingLayer(Layer):
    num_bottom = 1
    min_top = 1
    max_top = 2
    primitives = ('pool_plan', 'pool_forward', 'pool_backward')
    # Caffe has no check: an in-place Pooling reshapes its own input to the pooled shape and
    # overwrites it before reading it (garbage), then shrinks it again every forward until a
    # reshape fails. cct refuses it when the net is built.
    inplace = False

    def setup(self, bottom, top):
        p = self.param.pooling_param
        if bottom[0].ndim != 4:
            self.fail('pooling needs a 4-D input (N, C, H, W), got shape %s' % (bottom[0].shape,))
        self.method = p.pool
        if len(top) == 2 and self.method != MAX:
            self.fail('a second top (the argmax mask) is only produced by MAX pooling')
        self.ceil_mode = p.round_mode == caffe_pb2.PoolingParameter.CEIL
        self.geometry = pool_geometry(p, bottom[0].shape[2], bottom[0].shape[3], self.describe())
        self._shape_key = None

    def reshape(self, bottom, top):
        if bottom[0].ndim != 4:
            self.fail('pooling needs a 4-D input (N, C, H, W), got shape %s' % (bottom[0].shape,))
        key = bottom[0].shape
        if key == self._shape_key:
            return
        num, channels, height, width = key
        if self.param.pooling_param.global_pooling:
            self.geometry = self.geometry._replace(kernel_h=height, kernel_w=width)
        g = self.geometry
        check_window_reach(self.describe(), 'height', height, g.kernel_h, g.stride_h, g.pad_h)
        check_window_reach(self.describe(), 'width', width, g.kernel_w, g.stride_w, g.pad_w)
        out_h = pool_out_size(height, g.kernel_h, g.stride_h, g.pad_h, self.ceil_mode)
        out_w = pool_out_size(width, g.kernel_w, g.stride_w, g.pad_w, self.ceil_mode)
        for blob in top:
            blob.reshape(num, channels, out_h, out_w)
        if self.method == MAX:
            method = 'max'
        elif self.method == AVE:
            method = 'ave'
        else:
            method = 'stochastic_train' if self.phase == caffe_pb2.TRAIN else 'stochastic_test'
        self.plan = self.device.pool_plan(method, (g.kernel_h, g.kernel_w), (g.pad_h, g.pad_w),
                                          (g.stride_h, g.stride_w), key,
                                          (num, channels, out_h, out_w), self.dtype)
        self._shape_key = key

    @property
    def mask(self):
        """The device plan's argmax (MAX) or sample (STOCHASTIC in TRAIN) indices."""
        return self.plan.mask

    def forward(self, bottom, top):
        self.device.pool_forward(self.plan, bottom[0].dev_data, top[0].dev_data)
        if len(top) == 2:
            self.device.pool_argmax(self.plan, top[1].dev_data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        self.device.pool_backward(self.plan, top[0].dev_diff, bottom[0].dev_diff,
                                  bottom[0].dev_data, top[0].dev_data)
