"""ONNX converters for the vision layers: Convolution, Deconvolution, Pooling (with Caffe's output
size and AVE divisor made explicit), LRN, InnerProduct and Embed."""
import numpy as np

from cct.export.graph import converts, refuse
from cct.proto import caffe_pb2

_Pool = caffe_pb2.PoolingParameter
_LRN = caffe_pb2.LRNParameter


def _weights(layer, index):
    return np.asarray(layer.blobs[index].data, np.float32)


@converts('Convolution', 'Deconvolution')
def convolution(g, layer, bottoms, tops):
    if layer.axis != 1:
        refuse(layer, 'axis: %d' % layer.param.convolution_param.axis,
               'ONNX convolves NCHW tensors (channels on axis 1)')
    geometry = layer.geometry
    # Both layouts match ONNX's: Conv's (M, C/group, kh, kw), ConvTranspose's (C, M/group, kh, kw).
    inputs = [g.const(_weights(layer, 0), 'weight')]
    if layer.bias_term:
        inputs.append(g.const(_weights(layer, 1), 'bias'))
    op_type = 'ConvTranspose' if layer.type == 'Deconvolution' else 'Conv'
    outputs = []
    for bottom, top in zip(bottoms, tops):
        outputs.append(g.op(op_type, [bottom.name] + inputs, top.name,
                            kernel_shape=list(geometry.kernel), strides=list(geometry.stride),
                            pads=list(geometry.pad) * 2, dilations=list(geometry.dilation),
                            group=layer.group))
    return outputs


def caffe_pool_divisors(size, out, kernel, stride, pad):
    """Caffe's AVE divisor along one axis: each window clipped to the padded extent
    [-pad, size + pad), so border windows count padding cells but not cells beyond it."""
    starts = np.arange(out) * stride - pad
    return np.minimum(starts + kernel, size + pad) - starts


@converts('Pooling')
def pooling(g, layer, bottoms, tops):
    if len(tops) > 1:
        refuse(layer, 'a second top (the argmax mask)', 'ONNX has no MaxPool index in Caffe\'s '
               'per-plane numbering')
    method = layer.param.pooling_param.pool
    if method not in (_Pool.MAX, _Pool.AVE):
        refuse(layer, 'pool: %s' % _Pool.PoolMethod.Name(method), 'no ONNX operator computes '
               "Caffe's stochastic pooling")
    x, top = bottoms[0], tops[0]
    if layer.param.pooling_param.global_pooling:
        return [g.op('GlobalMaxPool' if method == _Pool.MAX else 'GlobalAveragePool',
                     [x.name], top.name)]
    geo = layer.geometry
    size = x.shape[2:]
    out = top.shape[2:]
    kernel, stride, pad = ((geo.kernel_h, geo.kernel_w), (geo.stride_h, geo.stride_w),
                           (geo.pad_h, geo.pad_w))
    # Caffe rounds the output size up (and drops a last window that would start in the
    # padding): pad the end just enough that ONNX's floor rounding reaches Caffe's last window.
    # (Where that window ends inside the image no end pad is needed, and floor rounding then
    # counts exactly Caffe's windows, as the assertion checks.)
    end = [max(0, (o - 1) * s + k - n - p) for n, o, k, s, p in zip(size, out, kernel, stride, pad)]
    assert [(n + p + e - k) // s + 1 for n, k, s, p, e in
            zip(size, kernel, stride, pad, end)] == list(out), (layer.name, size, out)
    if method == _Pool.MAX:
        pads = list(pad) + end
        if all(value < k for value, k in zip(pads, kernel * 2)):
            # ONNX MaxPool ignores padding cells, as Caffe's windows clipped to the image do.
            return [g.op('MaxPool', [x.name], top.name, kernel_shape=list(kernel),
                         strides=list(stride), pads=pads)]
        # An end pad of a whole kernel (ONNX Runtime refuses pads >= kernel) means a last window
        # wholly outside the image (stride > kernel, no pad): Caffe outputs -FLT_MAX there, its
        # initial maximum, so pad with -FLT_MAX.
        lowest = g.const(np.finfo(np.float32).min, 'lowest')
        padded = g.op('Pad', [x.name, g.ints([0, 0] + list(pad) + [0, 0] + end, 'pads'), lowest])
        return [g.op('MaxPool', [padded], top.name, kernel_shape=list(kernel),
                     strides=list(stride))]
    # AVE: zero-pad explicitly and average over whole kernels, then rescale each output by
    # kernel area / Caffe's divisor where Caffe's divisor is not the kernel area.
    source = x.name
    if any(pad) or any(end):
        source = g.op('Pad', [x.name, g.ints([0, 0] + list(pad) + [0, 0] + end, 'pads')])
    divisors = np.outer(*[caffe_pool_divisors(n, o, k, s, p)
                          for n, o, k, s, p in zip(size, out, kernel, stride, pad)])
    with np.errstate(divide='ignore'):
        # A divisor of 0 (a window wholly beyond the image, no pad) is Caffe's 0/0: NaN here too.
        correction = (kernel[0] * kernel[1]) / divisors.astype(np.float64)
    exact = bool(np.all(correction == 1))
    pooled = g.op('AveragePool', [source], top.name if exact else None,
                  kernel_shape=list(kernel), strides=list(stride))
    if not exact:
        pooled = g.op('Mul', [pooled, g.const(correction, 'divisor_correction')], top.name)
    return [pooled]


@converts('LRN')
def lrn(g, layer, bottoms, tops):
    x, top = bottoms[0], tops[0]
    size = layer.size
    if layer.region == _LRN.ACROSS_CHANNELS:
        # ONNX's LRN is Caffe's: bias + alpha/size * sum of squares over size centred channels.
        return [g.op('LRN', [x.name], top.name, size=size, alpha=float(layer.alpha),
                     beta=float(layer.beta), bias=float(layer.k))]
    # WITHIN_CHANNEL as Caffe composes it: (1 + alpha * mean of squares over a size x size window,
    # zero padding counted)^-beta times x. With stride 1 and pad (size-1)/2 every window lies
    # inside the padded extent, so the divisor is size^2 everywhere.
    half = (size - 1) // 2
    squares = g.op('Mul', [x.name, x.name])
    mean = g.op('AveragePool', [squares], kernel_shape=[size, size], strides=[1, 1],
                pads=[half] * 4, count_include_pad=1)
    scaled = g.op('Mul', [mean, g.const(layer.alpha, 'alpha')])
    shifted = g.op('Add', [scaled, g.const(1.0, 'one')])
    factor = g.op('Pow', [shifted, g.const(-layer.beta, 'minus_beta')])
    return [g.op('Mul', [x.name, factor], top.name)]


@converts('InnerProduct')
def inner_product(g, layer, bottoms, tops):
    x, top = bottoms[0], tops[0]
    axis = layer.axis
    weight = _weights(layer, 0)
    if axis == 1 and len(x.shape) >= 2:
        flat = x.name if len(x.shape) == 2 else g.op('Flatten', [x.name], axis=1)
        inputs = [flat, g.const(weight, 'weight')]
        if layer.bias_term:
            inputs.append(g.const(_weights(layer, 1), 'bias'))
        return [g.op('Gemm', inputs, top.name, transB=0 if layer.transpose else 1)]
    # Another axis: view the input as (leading axes..., K) and multiply by the (K, N) matrix.
    flat = g.reshape(x.name, [0] * axis + [layer.k])
    matrix = weight if layer.transpose else weight.T
    product = g.op('MatMul', [flat, g.const(matrix, 'weight')],
                   None if layer.bias_term else top.name)
    if layer.bias_term:
        product = g.op('Add', [product, g.const(_weights(layer, 1), 'bias')], top.name)
    return [product]


@converts('Embed')
def embed(g, layer, bottoms, tops):
    # Caffe reads each float as an integer row index (cct refuses fractional ones).
    indices = g.op('Cast', [bottoms[0].name], to=g.onnx.TensorProto.INT64)
    rows = g.op('Gather', [g.const(_weights(layer, 0), 'weight'), indices],
                None if layer.bias_term else tops[0].name, axis=0)
    if layer.bias_term:
        rows = g.op('Add', [rows, g.const(_weights(layer, 1), 'bias')], tops[0].name)
    return [rows]
