"""ONNX converters for Caffe's element-wise layers: the neurons (ReLU, PReLU, ELU, Sigmoid, TanH,
AbsVal, Power, Exp, Log, BNLL, Threshold, Clip, Swish, Dropout), BatchNorm (stored or batch
statistics), Scale, Bias and Eltwise."""
import numpy as np

from cct.export.graph import converts, refuse
from cct.proto import caffe_pb2

_Eltwise = caffe_pb2.EltwiseParameter


def _unary(op_type):
    def convert(g, layer, bottoms, tops):
        return [g.op(op_type, [bottoms[0].name], tops[0].name)]
    return convert


converts('Sigmoid')(_unary('Sigmoid'))
converts('TanH')(_unary('Tanh'))
converts('AbsVal')(_unary('Abs'))
# Softplus, log(1 + e^x): Caffe's BNLL (computed there in the overflow-free two-branch form).
converts('BNLL')(_unary('Softplus'))


@converts('Dropout')
def dropout(g, layer, bottoms, tops):
    # TEST phase: Caffe's Dropout copies its input (the 1/(1-p) scaling happens while training).
    return [bottoms[0].name]


@converts('ReLU')
def relu(g, layer, bottoms, tops):
    slope = layer.param.relu_param.negative_slope
    if slope == 0:
        return [g.op('Relu', [bottoms[0].name], tops[0].name)]
    # max(x, 0) + slope * min(x, 0) is LeakyRelu for every slope.
    return [g.op('LeakyRelu', [bottoms[0].name], tops[0].name, alpha=float(slope))]


@converts('PReLU')
def prelu(g, layer, bottoms, tops):
    x = bottoms[0]
    slope = np.asarray(layer.blobs[0].data, np.float32)
    if not layer.channel_shared:
        slope = slope.reshape((-1,) + (1,) * (len(x.shape) - 2))
    return [g.op('PRelu', [x.name, g.const(slope, 'slope')], tops[0].name)]


@converts('ELU')
def elu(g, layer, bottoms, tops):
    return [g.op('Elu', [bottoms[0].name], tops[0].name, alpha=float(layer.alpha))]


@converts('Clip')
def clip(g, layer, bottoms, tops):
    # min(x, max) first, then max(., min), as Caffe nests them: with min > max every output is
    # min (ONNX's Clip would give max).
    below = g.op('Min', [bottoms[0].name, g.const(layer.high, 'max')])
    return [g.op('Max', [below, g.const(layer.low, 'min')], tops[0].name)]


@converts('Swish')
def swish(g, layer, bottoms, tops):
    x = bottoms[0].name
    gate = g.op('Sigmoid', [scale_shift(g, x, layer.beta, 0)])
    return [g.op('Mul', [x, gate], tops[0].name)]


@converts('Threshold')
def threshold(g, layer, bottoms, tops):
    above = g.op('Greater', [bottoms[0].name, g.const(layer.threshold, 'threshold')])
    return [g.op('Cast', [above], tops[0].name, to=g.onnx.TensorProto.FLOAT)]


def scale_shift(g, x, scale, shift, out=None):
    """``scale * x + shift``, leaving out a factor of 1 and a shift of 0 (as Caffe does)."""
    steps = []
    if scale != 1:
        steps.append(('Mul', scale, 'scale'))
    if shift != 0:
        steps.append(('Add', shift, 'shift'))
    for i, (op_type, value, hint) in enumerate(steps):
        x = g.op(op_type, [x, g.const(value, hint)], out if i == len(steps) - 1 else None)
    return x


@converts('Power')
def power(g, layer, bottoms, tops):
    x, top = bottoms[0], tops[0]
    if layer.diff_scale == 0:
        # Caffe writes a constant: 1 for power 0, else shift^power, whatever the input.
        value = 1.0 if layer.power == 0 else float(np.power(layer.shift, layer.power))
        shape = g.op('Shape', [x.name])
        return [g.op('ConstantOfShape', [shape], top.name,
                     value=g.onnx.numpy_helper.from_array(np.array([value], np.float32)))]
    if layer.power == 1:
        if layer.scale == 1 and layer.shift == 0:
            return [g.op('Identity', [x.name], top.name)]
        return [scale_shift(g, x.name, layer.scale, layer.shift, top.name)]
    base = scale_shift(g, x.name, layer.scale, layer.shift)
    return [g.op('Pow', [base, g.const(layer.power, 'power')], top.name)]


def _log_base(dtype, base):
    """ln(base) in the layer's dtype, -1 meaning e (Caffe's exp_layer.cpp and log_layer.cpp)."""
    return dtype.type(1) if base == -1 else np.log(dtype.type(base))


@converts('Exp')
def exp(g, layer, bottoms, tops):
    # Caffe's form: outer_scale * e^(inner_scale * x), inner_scale = ln(base) * scale and
    # outer_scale = base^shift, computed in the layer's dtype as its forward does.
    dtype = layer.dtype
    inner_scale = _log_base(dtype, layer.base) * dtype.type(layer.scale)
    shift = dtype.type(layer.shift)
    if shift == 0:
        outer_scale = dtype.type(1)
    elif layer.base == -1:
        outer_scale = np.exp(shift)
    else:
        outer_scale = np.power(dtype.type(layer.base), shift)
    inner = scale_shift(g, bottoms[0].name, inner_scale, 0)
    if outer_scale == 1:
        return [g.op('Exp', [inner], tops[0].name)]
    return [g.op('Mul', [g.op('Exp', [inner]), g.const(outer_scale, 'outer_scale')],
                 tops[0].name)]


@converts('Log')
def log(g, layer, bottoms, tops):
    dtype = layer.dtype
    base_scale = dtype.type(1) / _log_base(dtype, layer.base)
    inner = scale_shift(g, bottoms[0].name, dtype.type(layer.scale), dtype.type(layer.shift))
    if base_scale == 1:
        return [g.op('Log', [inner], tops[0].name)]
    return [g.op('Mul', [g.op('Log', [inner]), g.const(base_scale, 'base_scale')],
                 tops[0].name)]


def channel_constant(values, ndim, axis=1):
    """Per-channel ``values`` shaped to broadcast against an ``ndim``-D tensor from ``axis``."""
    values = np.asarray(values, np.float64)
    return values.reshape(values.shape + (1,) * (ndim - axis - values.ndim))


def affine(g, x, multiplier, addend, out):
    """``x * multiplier + addend`` (either may be None); ``out`` names the result."""
    if multiplier is not None:
        x = g.op('Mul', [x, g.const(multiplier, 'scale')], out if addend is None else None)
    if addend is not None:
        x = g.op('Add', [x, g.const(addend, 'bias')], out)
    return x


@converts('BatchNorm')
def batch_norm(g, layer, bottoms, tops):
    x = bottoms[0]
    ndim = len(x.shape)
    if not layer.use_global_stats:
        # use_global_stats: false normalises by the batch's own statistics (the biased variance).
        axes = [0] + list(range(2, ndim))
        centred = g.op('Sub', [x.name, g.reduce('ReduceMean', x.name, axes, keepdims=True)])
        variance = g.reduce('ReduceMean', g.op('Mul', [centred, centred]), axes, keepdims=True)
        std = g.op('Sqrt', [g.op('Add', [variance, g.const(layer.eps, 'eps')])])
        return [g.op('Div', [centred, std], tops[0].name)]
    # The stored sums divided by the scale-factor blob s; s == 0 means zero mean and variance.
    stored = [np.asarray(blob.data, np.float64) for blob in layer.blobs]
    factor = 0.0 if stored[2][0] == 0 else 1.0 / stored[2][0]
    mean, variance = stored[0] * factor, stored[1] * factor
    inv_std = 1.0 / np.sqrt(variance + float(layer.eps))
    return [affine(g, x.name, channel_constant(inv_std, ndim),
                   channel_constant(-mean * inv_std, ndim), tops[0].name)]


def _operand_axis(layer, x, operand_ndim):
    """Where Scale's or Bias's operand starts along the input's axes (0 for a scalar)."""
    return layer.broadcast_param.axis % len(x.shape) if operand_ndim else 0


def _operand(g, layer, bottoms):
    """The second bottom of Scale or Bias, reshaped to broadcast from the layer's axis."""
    x, operand = bottoms
    ndim = len(operand.shape)
    trailing = len(x.shape) - _operand_axis(layer, x, ndim) - ndim
    if trailing == 0:
        return operand.name
    # 0 keeps the operand's own sizes (a batch axis among them stays dynamic).
    return g.reshape(operand.name, [0] * ndim + [1] * trailing)


def _learned(layer, blob, x):
    """A learned Scale/Bias blob shaped to broadcast against ``x``."""
    return channel_constant(blob.data, len(x.shape), _operand_axis(layer, x, blob.data.ndim))


@converts('Scale')
def scale(g, layer, bottoms, tops):
    x, out = bottoms[0], tops[0].name
    bias = _learned(layer, layer.blobs[-1], x) if layer.bias_term else None
    if len(bottoms) == 1:
        return [affine(g, x.name, _learned(layer, layer.blobs[0], x), bias, out)]
    product = g.op('Mul', [x.name, _operand(g, layer, bottoms)], None if layer.bias_term else out)
    return [affine(g, product, None, bias, out) if layer.bias_term else product]


@converts('Bias')
def bias(g, layer, bottoms, tops):
    x, out = bottoms[0], tops[0].name
    if len(bottoms) == 1:
        return [affine(g, x.name, None, _learned(layer, layer.blobs[0], x), out)]
    return [g.op('Add', [x.name, _operand(g, layer, bottoms)], out)]


@converts('Eltwise')
def eltwise(g, layer, bottoms, tops):
    names = [b.name for b in bottoms]
    out = tops[0].name
    if layer.op == _Eltwise.PROD:
        acc = names[0]
        for i, name in enumerate(names[1:], 1):
            acc = g.op('Mul', [acc, name], out if i == len(names) - 1 else None)
        return [acc]
    if layer.op == _Eltwise.MAX:
        return [g.op('Max', names, out)]
    if layer.op != _Eltwise.SUM:
        refuse(layer, 'operation %d' % layer.op, 'unknown Eltwise operation')
    # Caffe: coeff[0] * x0 + coeff[1] * x1 + ..., accumulated in bottom order.
    terms = [name if coeff == 1 else g.op('Mul', [name, g.const(float(coeff), 'coeff')])
             for name, coeff in zip(names, layer.coeffs)]
    acc = terms[0]
    for i, term in enumerate(terms[1:], 1):
        acc = g.op('Add', [acc, term], out if i == len(terms) - 1 else None)
    return [acc]
