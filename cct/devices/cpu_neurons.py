"""The CPU device's neuron ops (``Device.unary``/``unary_backward``): the numpy sequences (and the
ReLU kernel) Caffe's CPU neuron layers compute, operation for operation."""
import numpy as np

from cct.kernels import elementwise
from cct.workspace import scratch

# Caffe's kBNLL_THRESHOLD: the backward evaluates e^min(x, 50).
BNLL_THRESHOLD = 50.0


def _scratch(purpose, like):
    return scratch('neuron ' + purpose, like.shape, like.dtype)


def sigmoid(values, out):
    """Caffe's CPU sigmoid, 0.5*tanh(0.5*x) + 0.5 (no overflow for large |x|); ``out`` may be
    ``values``."""
    np.multiply(values, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def forward(op, x, y, s):
    if op == 'relu':
        elementwise.relu_forward(x.reshape(-1), y.reshape(-1), y.dtype.type(s['slope']))
    elif op == 'sigmoid':
        sigmoid(x, y)
    elif op == 'tanh':
        np.tanh(x, out=y)
    elif op == 'abs':
        np.abs(x, out=y)
    elif op == 'bnll':
        # max(x, 0) + log(1 + e^-|x|) is Caffe's two-branch stable form in one pass.
        tail = _scratch('tail', x)
        np.abs(x, out=tail)
        np.negative(tail, out=tail)
        np.exp(tail, out=tail)
        np.log1p(tail, out=tail)
        np.maximum(x, 0, out=y)
        y += tail
    elif op == 'elu':
        negative = _scratch('negative', x)
        np.minimum(x, 0, out=negative)
        np.exp(negative, out=negative)
        negative -= 1
        negative *= y.dtype.type(s['alpha'])
        np.maximum(x, 0, out=y)
        y += negative
    elif op == 'threshold':
        np.greater(x, y.dtype.type(s['threshold']), out=y)
    elif op in ('power', 'exp', 'log'):
        _POWER_FAMILY[op][0](x, y, _dtype_scalars(y.dtype, s))
    elif op == 'clip':
        # min first, then max, as Caffe nests them: with min > max every output is min.
        np.minimum(x, y.dtype.type(s['high']), out=y)
        np.maximum(y, y.dtype.type(s['low']), out=y)
    else:
        raise NotImplementedError('the CPU device has no unary op %r' % op)


def backward(op, x, y, dy, dx, s):
    if op == 'relu':
        elementwise.relu_backward(x.reshape(-1), dy.reshape(-1), dx.reshape(-1),
                                  dx.dtype.type(s['slope']))
    elif op == 'sigmoid':
        slope = _scratch('slope', y)
        np.subtract(1, y, out=slope)
        slope *= y
        np.multiply(dy, slope, out=dx)
    elif op == 'tanh':
        slope = _scratch('slope', y)
        np.multiply(y, y, out=slope)
        np.subtract(1, slope, out=slope)
        np.multiply(dy, slope, out=dx)
    elif op == 'abs':
        slope = _scratch('slope', x)
        np.sign(x, out=slope)
        np.multiply(slope, dy, out=dx)
    elif op == 'bnll':
        exp_x = _scratch('exp', x)
        np.minimum(x, x.dtype.type(BNLL_THRESHOLD), out=exp_x)
        np.exp(exp_x, out=exp_x)
        np.multiply(dy, exp_x, out=dx)
        exp_x += 1
        dx /= exp_x
    elif op == 'elu':
        slope = _scratch('slope', x)
        np.add(y, x.dtype.type(s['alpha']), out=slope)
        np.copyto(slope, 1, where=x > 0)
        np.multiply(dy, slope, out=dx)
    elif op in ('power', 'exp', 'log'):
        _POWER_FAMILY[op][1](x, y, dy, dx, _dtype_scalars(dx.dtype, s))
    elif op == 'clip':
        inside = (x >= x.dtype.type(s['low'])) & (x <= x.dtype.type(s['high']))
        np.multiply(dy, inside, out=dx)
    else:
        raise NotImplementedError('the CPU device has no gradient for unary op %r' % op)


def prelu(x, slopes, y, inner):
    shape = (-1, slopes.size, inner)
    x3, y3 = x.reshape(shape), y.reshape(shape)
    negative = _scratch('negative', x3)
    np.minimum(x3, 0, out=negative)
    negative *= slopes if slopes.size == 1 else slopes.reshape(1, -1, 1)
    np.maximum(x3, 0, out=y3)
    y3 += negative


def prelu_backward(x, slopes, dy, dx, slope_diff, inner):
    shape = (-1, slopes.size, inner)
    x3, dy3 = x.reshape(shape), dy.reshape(shape)
    if slope_diff is not None:
        contribution = _scratch('negative', x3)
        np.minimum(x3, 0, out=contribution)
        contribution *= dy3
        if slopes.size == 1:
            slope_diff[...] += contribution.sum()
        else:
            slope_diff[...] += contribution.sum(axis=(0, 2))
    if dx is not None:
        slope = np.where(x3 > 0, x.dtype.type(1),
                         slopes if slopes.size == 1 else slopes.reshape(1, -1, 1))
        np.multiply(dy3, slope, out=dx.reshape(shape))


# Caffe's power_layer.cpp, exp_layer.cpp and log_layer.cpp, operation for operation (each skips
# the multiplications by 1 and additions of 0 Caffe skips).
def _dtype_scalars(dtype, scalars):
    return {name: dtype.type(value) for name, value in scalars.items()}


def _log_base(dtype, base):
    return dtype.type(1) if base == -1 else np.log(base)


def _affine(x, out, scale, shift):
    """out = shift + scale*x, skipping the multiplication by 1 and the addition of 0 as Caffe does
    (``out`` may be ``x``)."""
    if scale != 1:
        np.multiply(x, scale, out=out)
    elif out is not x:
        np.copyto(out, x)
    if shift != 0:
        out += shift


def _power_forward(x, y, s):
    power, scale, shift = s['power'], s['scale'], s['shift']
    _affine(x, y, scale, shift)
    if power != 1:
        np.power(y, power, out=y)


def _power_backward(x, y, dy, dx, s):
    power, scale, shift = s['power'], s['scale'], s['shift']
    diff_scale = power * scale
    if diff_scale == 0 or power == 1:
        dx[...] = diff_scale
    elif power == 2:
        # dy/dx = 2*scale*(shift + scale*x) = diff_scale*scale*x + diff_scale*shift
        np.multiply(x, diff_scale * scale, out=dx)
        if shift != 0:
            dx += diff_scale * shift
    elif shift == 0:
        # dy/dx = power*(scale*x)^power / x = power*y / x
        np.divide(y, x, out=dx)
        dx *= power
    else:
        # dy/dx = diff_scale*y / (shift + scale*x)
        _affine(x, dx, scale, shift)
        np.divide(y, dx, out=dx)
        if diff_scale != 1:
            dx *= diff_scale
    if diff_scale != 0:
        dx *= dy


def _exp_scales(dtype, s):
    base = s['base']
    inner = _log_base(dtype, base) * s['scale']
    if s['shift'] == 0:
        outer = dtype.type(1)
    else:
        outer = np.exp(s['shift']) if base == -1 else np.power(base, s['shift'])
    return inner, outer


def _exp_forward(x, y, s):
    inner, outer = _exp_scales(y.dtype, s)
    if inner == 1:
        np.exp(x, out=y)
    else:
        np.multiply(x, inner, out=y)
        np.exp(y, out=y)
    if outer != 1:
        y *= outer


def _exp_backward(x, y, dy, dx, s):
    inner, _ = _exp_scales(dx.dtype, s)
    np.multiply(y, dy, out=dx)
    if inner != 1:
        dx *= inner


def _log_forward(x, y, s):
    log_base = _log_base(y.dtype, s['base'])
    base_scale = y.dtype.type(1) / log_base
    scale, shift = s['scale'], s['shift']
    if scale == 1 and shift == 0:
        np.log(x, out=y)
    else:
        _affine(x, y, scale, shift)
        np.log(y, out=y)
    if base_scale != 1:
        y *= base_scale


def _log_backward(x, y, dy, dx, s):
    # dy/dx = scale / (ln(base)*(shift + scale*x)), in Caffe's order of operations.
    scale, shift = s['scale'], s['shift']
    numerator = scale / _log_base(dx.dtype, s['base'])
    _affine(x, dx, scale, shift)
    np.reciprocal(dx, out=dx)
    if numerator != 1:
        dx *= numerator
    dx *= dy


_POWER_FAMILY = {'power': (_power_forward, _power_backward),
                 'exp': (_exp_forward, _exp_backward),
                 'log': (_log_forward, _log_backward)}
