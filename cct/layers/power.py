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
    """y = (shift + scale·x)^power."""

    def setup(self, bottom, top):
        param = self.param.power_param
        dtype = self.dtype.type
        self.power, self.scale, self.shift = (dtype(param.power), dtype(param.scale),
                                              dtype(param.shift))
        self.diff_scale = self.power * self.scale

    def forward(self, bottom, top):
        y = top[0].data
        if self.diff_scale == 0:
            y[...] = 1 if self.power == 0 else np.power(self.shift, self.power)
            return
        if self.scale != 1:
            np.multiply(bottom[0].data, self.scale, out=y)
        elif y is not bottom[0].data:
            np.copyto(y, bottom[0].data)
        if self.shift != 0:
            y += self.shift
        if self.power != 1:
            np.power(y, self.power, out=y)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        if self.diff_scale == 0 or self.power == 1:
            dx[...] = self.diff_scale
        else:
            x = bottom[0].data
            if self.power == 2:
                # dy/dx = 2·scale·(shift + scale·x) = diff_scale·scale·x + diff_scale·shift
                np.multiply(x, self.diff_scale * self.scale, out=dx)
                if self.shift != 0:
                    dx += self.diff_scale * self.shift
            elif self.shift == 0:
                # dy/dx = power·(scale·x)^power / x = power·y / x
                np.divide(top[0].data, x, out=dx)
                dx *= self.power
            else:
                # dy/dx = diff_scale·y / (shift + scale·x)
                if self.scale != 1:
                    np.multiply(x, self.scale, out=dx)
                else:
                    np.copyto(dx, x)
                if self.shift != 0:
                    dx += self.shift
                np.divide(top[0].data, dx, out=dx)
                if self.diff_scale != 1:
                    dx *= self.diff_scale
        if self.diff_scale != 0:
            dx *= top[0].diff


def _log_base(layer, base):
    """ln(base) in the layer's dtype; base −1 means e (exactly 1). Fails for base <= 0."""
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
    """y = base^(shift + scale·x); the backward needs only y, so in-place is exact."""

    def setup(self, bottom, top):
        param = self.param.exp_param
        dtype = self.dtype.type
        base = dtype(param.base)
        self.inner_scale = _log_base(self, base) * dtype(param.scale)
        shift = dtype(param.shift)
        if shift == 0:
            self.outer_scale = dtype(1)
        else:
            self.outer_scale = np.exp(shift) if base == -1 else np.power(base, shift)

    def forward(self, bottom, top):
        y = top[0].data
        if self.inner_scale == 1:
            np.exp(bottom[0].data, out=y)
        else:
            np.multiply(bottom[0].data, self.inner_scale, out=y)
            np.exp(y, out=y)
        if self.outer_scale != 1:
            y *= self.outer_scale

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        np.multiply(top[0].data, top[0].diff, out=dx)
        if self.inner_scale != 1:
            dx *= self.inner_scale


@register('Log')
class LogLayer(NeuronLayer):
    """y = log_base(shift + scale·x)."""

    def setup(self, bottom, top):
        param = self.param.log_param
        dtype = self.dtype.type
        log_base = _log_base(self, dtype(param.base))
        with np.errstate(divide='ignore'):
            self.base_scale = dtype(1) / log_base
        if not np.isfinite(self.base_scale):
            self.fail('Inf result: 1/log(base) = 1/log(%g) = %g'
                      % (param.base, self.base_scale))
        self.input_scale, self.input_shift = dtype(param.scale), dtype(param.shift)
        self.backward_num_scale = self.input_scale / log_base

    def forward(self, bottom, top):
        y = top[0].data
        if self.input_scale == 1 and self.input_shift == 0:
            np.log(bottom[0].data, out=y)
        else:
            if self.input_scale != 1:
                np.multiply(bottom[0].data, self.input_scale, out=y)
            elif y is not bottom[0].data:
                np.copyto(y, bottom[0].data)
            if self.input_shift != 0:
                y += self.input_shift
            np.log(y, out=y)
        if self.base_scale != 1:
            y *= self.base_scale

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        # dy/dx = scale / (ln(base)·(shift + scale·x)), in Caffe's order of operations.
        dx = bottom[0].diff
        if self.input_scale != 1:
            np.multiply(bottom[0].data, self.input_scale, out=dx)
        else:
            np.copyto(dx, bottom[0].data)
        if self.input_shift != 0:
            dx += self.input_shift
        np.reciprocal(dx, out=dx)
        if self.backward_num_scale != 1:
            dx *= self.backward_num_scale
        dx *= top[0].diff
