"""ONNX converters for Caffe's layers that route, reshape or reduce: Concat, Slice, Split, Flatten,
Reshape, Crop, Silence, Softmax, ArgMax, Reduction, Tile and MVN."""
import numpy as np

from cct.export.graph import converts, refuse
from cct.proto import caffe_pb2

_Reduction = caffe_pb2.ReductionParameter


def _canonical(layer, axis, ndim):
    if not -ndim <= axis < ndim:
        refuse(layer, 'axis %d' % axis, 'out of range for a %d-D input' % ndim)
    return axis % ndim


@converts('Split')
def split(g, layer, bottoms, tops):
    return [bottoms[0].name] * len(tops)


@converts('Silence')
def silence(g, layer, bottoms, tops):
    return []


@converts('Concat')
def concat(g, layer, bottoms, tops):
    if len(bottoms) == 1:
        return [bottoms[0].name]
    return [g.op('Concat', [b.name for b in bottoms], tops[0].name, axis=layer.axis)]


@converts('Slice')
def slice_(g, layer, bottoms, tops):
    if len(tops) == 1:
        return [bottoms[0].name]
    outputs = g.split(bottoms[0].name, layer.axis, layer.sizes, [t.name for t in tops])
    return list(outputs)


@converts('Flatten')
def flatten(g, layer, bottoms, tops):
    x, top = bottoms[0], tops[0]
    ndim = len(x.shape)
    start = _canonical(layer, layer.param.flatten_param.axis, ndim)
    end = _canonical(layer, layer.param.flatten_param.end_axis, ndim)
    # Leading axes keep their sizes (0 copies them, so the batch stays dynamic).
    return [g.reshape(x.name, [0] * start + [-1] + list(x.shape[end + 1:]), top.name)]


@converts('Reshape')
def reshape(g, layer, bottoms, tops):
    x, top = bottoms[0], tops[0]
    p = layer.param.reshape_param
    ndim = len(x.shape)
    start = p.axis if p.axis >= 0 else ndim + p.axis + 1
    end = ndim if p.num_axes == -1 else start + p.num_axes
    # Caffe's 0 copies the bottom's size at the same axis, as ONNX's 0 does here (the axes before
    # ``start`` are kept, so indices line up); the axes after the replaced range keep their sizes.
    return [g.reshape(x.name, [0] * start + list(layer.dims) + list(x.shape[end:]), top.name)]


@converts('Crop')
def crop(g, layer, bottoms, tops):
    x, top = bottoms[0], tops[0]
    if layer.start_axis == 0 and g.dynamic_batch:
        refuse(layer, 'axis: 0 with a dynamic batch', 'the crop of the batch axis is fixed by '
               "the reference blob's batch size")
    axes = list(range(layer.start_axis, len(x.shape)))
    starts = [layer.window[axis].start for axis in axes]
    stops = [layer.window[axis].stop for axis in axes]
    return [g.slice(x.name, starts, stops, axes, out=top.name)]


@converts('Softmax')
def softmax(g, layer, bottoms, tops):
    x = bottoms[0]
    axis = _canonical(layer, layer.param.softmax_param.axis, len(x.shape))
    # Since opset 13 ONNX's Softmax normalises along one axis, as Caffe's does.
    return [g.op('Softmax', [x.name], tops[0].name, axis=axis)]


@converts('ArgMax')
def argmax(g, layer, bottoms, tops):
    x, top = bottoms[0], tops[0]
    k = layer.top_k
    if layer.has_axis:
        axis = layer.axis
        values = x.name
    else:
        axis = 1
        values = g.reshape(x.name, [0, -1])
    extent = (x.shape[axis] if layer.has_axis else
              int(np.prod(x.shape[1:], dtype=np.int64)))
    # Caffe ranks (value, index) pairs descending, so the highest index wins a tie; TopK prefers
    # the lowest index. Search the reversed axis and map the indices back.
    backwards = g.slice(values, [-1], [-(extent + 1)], [axis], steps=[-1])
    best, order = g.op('TopK', [backwards, g.ints([k], 'k')], num_outputs=2, axis=axis,
                       largest=1, sorted=1)
    flipped = g.op('Sub', [g.ints([extent - 1], 'last'), order])
    indices = g.op('Cast', [flipped], None, to=g.onnx.TensorProto.FLOAT)
    if layer.has_axis:
        return [g.op('Identity', [best if layer.out_max_val else indices], top.name)]
    # (N, 1, k) indices, or (N, 2, k) indices then values; at least 3 axes as Caffe pads them.
    parts = [indices, best] if layer.out_max_val else [indices]
    rows = [g.reshape(part, [0, 1, k]) for part in parts]
    joined = rows[0] if len(rows) == 1 else g.op('Concat', rows, axis=1)
    return [g.reshape(joined, [0] + list(top.shape[1:]), top.name)]


_REDUCE_OPS = {_Reduction.SUM: 'ReduceSum', _Reduction.ASUM: 'ReduceL1',
               _Reduction.SUMSQ: 'ReduceSumSquare', _Reduction.MEAN: 'ReduceMean'}


@converts('Reduction')
def reduction(g, layer, bottoms, tops):
    x, top = bottoms[0], tops[0]
    if layer.op not in _REDUCE_OPS:
        refuse(layer, 'operation %d' % layer.op, 'unknown Reduction operation')
    coeff = layer.param.reduction_param.coeff
    axes = list(range(layer.axis, len(x.shape)))
    reduced = g.reduce(_REDUCE_OPS[layer.op], x.name, axes, keepdims=False,
                       out=top.name if coeff == 1 else None)
    if coeff == 1:
        return [reduced]
    return [g.op('Mul', [reduced, g.const(coeff, 'coeff')], top.name)]


@converts('Tile')
def tile(g, layer, bottoms, tops):
    repeats = [1] * len(bottoms[0].shape)
    repeats[layer.axis] = layer.tiles
    return [g.op('Tile', [bottoms[0].name, g.ints(repeats, 'repeats')], tops[0].name)]


@converts('MVN')
def mvn(g, layer, bottoms, tops):
    x, top = bottoms[0], tops[0]
    # Caffe's top is the bottom's legacy 4-D view (an (N, C) bottom gives (N, C, 1, 1)).
    source = x.name
    if tuple(x.shape) != tuple(top.shape):
        source = g.reshape(x.name, [0] + list(top.shape[1:]))
    axes = [1, 2, 3] if layer.across_channels else [2, 3]
    mean = g.reduce('ReduceMean', source, axes, keepdims=True)
    centred = g.op('Sub', [source, mean], None if layer.normalize_variance else top.name)
    if not layer.normalize_variance:
        return [centred]
    # eps is added to the standard deviation (of the biased variance), not to the variance.
    variance = g.reduce('ReduceMean', g.op('Mul', [centred, centred]), axes, keepdims=True)
    deviation = g.op('Add', [g.op('Sqrt', [variance]), g.const(layer.eps, 'eps')])
    return [g.op('Div', [centred, deviation], top.name)]
