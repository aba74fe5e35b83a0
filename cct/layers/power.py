"""Power, Exp and Log: functions of the affine input shift + scale·x (Caffe's power_layer.cpp,
exp_layer.cpp and log_layer.cpp).

Rules that are easy to get wrong:
* Power: y = (shift + scale·x)^power. When power·scale == 0 the input is ignored (y = 1 for power 0,
  shift^power otherwise) and the gradient is 0; power 1 gives the constant gradient scale; power 2
  and shift 0 have their own backward formulas (shift 0 divides y by x: x = 0 gives inf/nan).
* Exp: y = base^(shift + scale·x), base −1 meaning e; computed as outer·e^(inner·x) with
  inner = ln(base)·scale and outer = base^shift. Log: y = log_base(shift + scale·x).
* The constants are computed once, in the layer's dtype, like Caffe's Dtype members.
* The operations run in Caffe's order on Caffe's buffers, so in-place use (which Caffe allows)
  gives what Caffe gives: exact for Exp, while Power (except power 1 and the constant case) and
  Log compute their gradients from overwritten data — Caffe's bug, kept; in-place power 1 even
  returns diff_scale² everywhere, since Caffe writes the slope over the top diff before using it.
"""
import numpy as np

from cct.layers.base import register
from cct.layers.neuron import NeuronLayer


@register('Power')
class PowerLayer(NeuronLayer):
    """y = (shift + scale*x)^power."""

    primitives = ('fill', 'mul', ('unary', 'power'), ('unary_backward', 'power'))

    def setup(self, bottom, top):
        param = self.param.power_param
        dtype = self.dtype.type
        self.power, self.scale, self.shift = (dtype(param.power), dtype(param.scale),
                                              dtype(param.shift))
        self.diff_scale = self.power * self.scale

    def scalars(self):
        return {'power': self.power, 'scale': self.scale, 'shift': self.shift}

    def forward(self, bottom, top):
        if self.diff_scale == 0:
            self.device.fill(top[0].dev_data,
                             1 if self.power == 0 else np.power(self.shift, self.power))
            return
        self.device.unary('power', bottom[0].dev_data, top[0].dev_data, **self.scalars())

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].dev_diff
        if self.diff_scale == 0 or self.power == 1:
            self.device.fill(dx, self.diff_scale)
            if self.diff_scale != 0:
                self.device.mul(dx, top[0].dev_diff, dx)
            return
        self.device.unary_backward('power', bottom[0].dev_data, top[0].dev_data,
                                   top[0].dev_diff, dx, **self.scalars())


def _log_base(layer, base):
    """ln(base) in the layer's dtype; base -1 means e (exactly 1). Fails for base <= 0."""
    if base == -1:
        return layer.dtype.type(1)
    if not base > 0:
        layer.fail('base must be strictly positive, got %g' % base)
    log_base = np.log(layer.dtype.type(base))
    if not np.isfinite(log_base):
        layer.fail('%s result: log(base) = log(%g) = %g'
                   % ('NaN' if np.isnan(log_base) else 'Inf', base, log_base))
    return log_base


@register('Exp')
class ExpLayer(NeuronLayer):
    """y = base^(shift + scale*x); the backward needs only y, so in-place is exact."""

    primitives = (('unary', 'exp'), ('unary_backward', 'exp'))

    def setup(self, bottom, top):
        param = self.param.exp_param
        _log_base(self, self.dtype.type(param.base))
        self.base, self.scale, self.shift = param.base, param.scale, param.shift

    def forward(self, bottom, top):
        self.device.unary('exp', bottom[0].dev_data, top[0].dev_data, base=self.base,
                          scale=self.scale, shift=self.shift)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        self.device.unary_backward('exp', bottom[0].dev_data, top[0].dev_data, top[0].dev_diff,
                                   bottom[0].dev_diff, base=self.base, scale=self.scale,
                                   shift=self.shift)


@register('Log')
class LogLayer(NeuronLayer):
    """y = log_base(shift + scale*x)."""

    primitives = (('unary', 'log'), ('unary_backward', 'log'))

    def setup(self, bottom, top):
        param = self.param.log_param
        dtype = self.dtype.type
        log_base = _log_base(self, dtype(param.base))
        with np.errstate(divide='ignore'):
            base_scale = dtype(1) / log_base
        if not np.isfinite(base_scale):
            self.fail('Inf result: 1/log(base) = 1/log(%g) = %g' % (param.base, base_scale))
        self.base, self.scale, self.shift = param.base, param.scale, param.shift

    def forward(self, bottom, top):
        self.device.unary('log', bottom[0].dev_data, top[0].dev_data, base=self.base,
                          scale=self.scale, shift=self.shift)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        self.device.unary_backward('log', bottom[0].dev_data, top[0].dev_data, top[0].dev_diff,
                                   bottom[0].dev_diff, base=self.base, scale=self.scale,
                                   shift=self.shift)
