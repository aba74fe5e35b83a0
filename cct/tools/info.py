"""Summarize a net, one row per layer: ``cct info MODEL [--weights W] [--phase TEST] [--level N]
[--stage s]``.

Caffe has no such tool. Each row gives the layer's name, type, top shapes, parameter count and
forward FLOPs; totals follow (unique parameters, FLOPs per batch and per item, blob memory). The
net is built as ``cct test`` builds it (phase TEST unless ``--phase`` says otherwise). Automatically
inserted Split layers are not listed (they neither compute nor learn).

The net's data need not exist: a data layer whose files are absent shows the shapes its parameters
declare (batch_size, crop_size, ...; see ``cct.tools.info_data``), and where they leave a size
unknown, the table says ``?`` for it and for the layers that depend on it, and says why below.

FLOPs are counted from each layer's type and blob shapes, a multiply-add being 2 FLOPs:
Convolution/Deconvolution/InnerProduct 2 x MACs (+1 per output for the bias), Pooling one per
window element, LRN 2 x window + 4 per element, Softmax 5 per element, element-wise layers one per
element per input, BatchNorm/Scale/Bias/MVN a few per element; layers that only move data count
0. Types without a rule show ``?`` and are listed under the table.
"""
import logging
import os
import sys

import numpy as np

from cct import io as cct_io
from cct.errors import CctError
from cct.layers.geometry import pool_geometry
from cct.log import logger
from cct.net import Net
from cct.netgraph import insert_splits
from cct.proto import caffe_pb2
from cct.tools.common import add_net_state_flags, phase_from_flag, stages_from_flag
from cct.tools.info_data import DATA_TYPES, Plan, shape_text

# Types that only copy, share or route data: no arithmetic to count.
_NO_FLOPS = {'Input', 'Data', 'ImageData', 'HDF5Data', 'HDF5Output', 'MemoryData', 'DummyData',
             'WindowData', 'Split', 'Concat', 'Slice', 'Flatten', 'Reshape', 'Silence', 'Crop',
             'Tile', 'BatchReindex', 'Filter', 'Parameter', 'Im2col', 'Python'}
# Element-wise layers: FLOPs per element of the (first) top.
_PER_ELEMENT = {'ReLU': 1, 'PReLU': 2, 'ELU': 3, 'Sigmoid': 4, 'TanH': 4, 'AbsVal': 1,
                'BNLL': 4, 'Power': 3, 'Exp': 3, 'Log': 3, 'Threshold': 1, 'Clip': 2,
                'Swish': 5, 'BatchNorm': 2, 'Scale': 1, 'Bias': 1, 'MVN': 4, 'ArgMax': 1}


def add_arguments(parser):
    parser.add_argument('model', help='The net definition (prototxt)')
    parser.add_flag('weights', default='',
                    help='Optional; trained weights (.caffemodel or .caffemodel.h5) to load and '
                         'check against the net')
    parser.add_flag('phase', default='', help='Optional; TRAIN or TEST (default TEST)')
    add_net_state_flags(parser)


def _count(shape):
    return int(np.prod(shape, dtype=np.int64))


def _conv_flops(layer, bottom, top, reverse):
    """2 x MACs of a (de)convolution, plus one add per output for the bias."""
    weights = layer.blobs[0].shape
    macs_per_position = _count(weights[1:])      # (C_in/group or num_output/group) * kh * kw
    total = 0
    for b, t in zip(bottom, top):
        lowered = b if reverse else t         # the side with one GEMM column per position
        positions = _count(lowered.shape[:1] + lowered.shape[2:])
        total += 2 * positions * weights[0] * macs_per_position
        if layer.param.convolution_param.bias_term:
            total += t.count
    return total


def forward_flops(layer, bottom, top):
    """Forward FLOPs of ``layer`` from its type, parameters and blob shapes; None if unknown."""
    kind = layer.type
    if kind in _NO_FLOPS:
        return 0
    if kind in ('Convolution', 'Deconvolution'):
        return _conv_flops(layer, bottom, top, kind == 'Deconvolution')
    if kind == 'InnerProduct':
        outputs = layer.param.inner_product_param.num_output
        rows = top[0].count // outputs
        inputs = bottom[0].count // rows
        return 2 * rows * inputs * outputs + (top[0].count if
                                              layer.param.inner_product_param.bias_term else 0)
    if kind == 'Pooling':
        height, width = bottom[0].shape[2:4]
        g = pool_geometry(layer.param.pooling_param, height, width, layer.describe())
        return top[0].count * g.kernel_h * g.kernel_w
    if kind == 'LRN':
        size = layer.param.lrn_param.local_size
        within = layer.param.lrn_param.norm_region == caffe_pb2.LRNParameter.WITHIN_CHANNEL
        return top[0].count * (2 * (size * size if within else size) + 4)
    if kind == 'Softmax':
        return 5 * top[0].count
    if kind in ('SoftmaxWithLoss', 'SigmoidCrossEntropyLoss', 'MultinomialLogisticLoss',
                'InfogainLoss', 'EuclideanLoss', 'HingeLoss', 'ContrastiveLoss'):
        return 5 * bottom[0].count
    if kind == 'Accuracy':
        return bottom[0].count
    if kind == 'Dropout':
        return top[0].count if layer.phase == caffe_pb2.TRAIN else 0
    if kind == 'Eltwise':
        return (len(bottom) - 1) * top[0].count
    if kind == 'Reduction':
        return bottom[0].count
    if kind == 'Embed':
        return top[0].count
    if kind in _PER_ELEMENT:
        return _PER_ELEMENT[kind] * top[0].count
    return None


def human(value, unit=''):
    """``1234567`` -> ``'1.23 M'``: three significant digits with k/M/G/T."""
    value = float('%.3g' % value)   # round first: 999999 is '1.00 M', not '1000 k'
    for scale, prefix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
        if abs(value) >= scale:
            scaled = value / scale
            digits = 2 if scaled < 10 else 1 if scaled < 100 else 0
            return '%.*f %s%s' % (digits, scaled, prefix, unit)
    return '%d %s' % (value, unit) if unit else '%d' % value


def _shapes(blobs):
    return ', '.join('x'.join(str(d) for d in blob.shape) or 'scalar' for blob in blobs)


def _inserted_split(layer, name, top_names):
    """Whether this Split is one the net inserted (named ``<blob>_<layer>_<i>_split``, tops
    ``..._split_<k>``) rather than one the prototxt declares."""
    return layer.type == 'Split' and name.endswith('_split') and \
        all(top == '%s_%d' % (name, k) for k, top in enumerate(top_names))


def _batch_size(net):
    """Axis 0 of the net's first input, or of the first top of its first layer without bottoms
    (a Data layer's batch); None for a net without either."""
    sources = [net.blobs_list[i] for i in net.input_blob_indices] + [
        top[0] for bottom, top in zip(net.bottom_vecs, net.top_vecs) if not bottom and top]
    return sources[0].shape[0] if sources and sources[0].ndim else None


def summarize(net):
    """(rows, totals) describing ``net``: each row a dict of the table's columns."""
    rows, unknown = [], []
    hidden_splits = 0
    owned = {id(blob) for blob in net.learnable_params}
    for i, (name, layer) in enumerate(zip(net.layer_names, net.layers)):
        bottom, top = net.bottom_vecs[i], net.top_vecs[i]
        flops = forward_flops(layer, bottom, top)
        if flops is None:
            unknown.append(layer.type)
        if _inserted_split(layer, name, [net.blob_names[b] for b in net.top_ids[i]]):
            hidden_splits += 1
            continue
        params = sum(blob.count for blob in layer.blobs)
        shared = any(id(blob) not in owned for blob in layer.blobs)
        rows.append({'index': i, 'name': name, 'type': layer.type, 'shapes': _shapes(top),
                     'params': params, 'shared': shared, 'flops': flops})
    totals = {
        'params': sum(blob.count for blob in net.learnable_params),
        'flops': sum(row['flops'] or 0 for row in rows),
        'memory': sum(blob.count for blob in net.blobs_list) * net.dtype.itemsize,
        'batch': _batch_size(net),
        'unknown': sorted(set(unknown)), 'hidden_splits': hidden_splits,
    }
    return rows, totals


def describe(plan, net):
    """(rows, totals) of the whole net ``plan`` describes, where ``net`` is built from
    ``plan.param``: the layers left out in their places with ``?`` for what is unknown, the data
    layers turned into Inputs under their own type with their declared shapes, every row numbered
    as in the whole net."""
    rows, totals = summarize(net)
    built = {}
    for row in rows:
        built.setdefault(row['name'], []).append(row)
    whole = insert_splits(plan.filtered).layer
    described, cursor = [], 0
    for index, layer in enumerate(plan.filtered.layer):
        while (whole[cursor].name, whole[cursor].type) != (layer.name, layer.type):
            cursor += 1   # a Split the whole net would insert
        shapes = plan.described.get(index, ())
        if layer.type in DATA_TYPES and shapes:
            row = {'params': 0, 'shared': False, 'flops': 0,
                   'shapes': ', '.join(shape_text(shape) for shape in shapes)}
        elif shapes is None:
            row = {'params': None, 'shared': False, 'flops': None,
                   'shapes': ', '.join('?' for _ in layer.top)}
        elif built.get(layer.name):
            row = built[layer.name].pop(0)
        else:
            continue   # a Split the prototxt declares under an inserted Split's name: hidden
        described.append(dict(row, index=cursor, name=layer.name, type=layer.type))
    totals.update(layers=len(whole), unknown_shapes=plan.unknown,
                  left_out=sum(shapes is None for shapes in plan.described.values()),
                  hidden_splits=totals['hidden_splits'] if not plan.described else
                  len(whole) - len(plan.filtered.layer))
    return described, totals


def format_table(net, rows, totals):
    """The summary as text: aligned columns, then the totals in words."""
    header = ('#', 'Layer', 'Type', 'Top shape', 'Params', 'FLOPs')
    body = [(str(r['index']), r['name'], r['type'], r['shapes'],
             '?' if r['params'] is None else
             '{:,}'.format(r['params']) + (' (shared)' if r['shared'] else ''),
             '?' if r['flops'] is None else human(r['flops']) if r['flops'] else '-')
            for r in rows]
    footer = ('', 'Total', '', '', '{:,}'.format(totals['params']), human(totals['flops']))
    widths = [max(len(line[c]) for line in [header, footer] + body) for c in range(6)]
    right = (True, False, False, False, True, True)

    def line(cells):
        return '  '.join(cell.rjust(w) if r else cell.ljust(w)
                         for cell, w, r in zip(cells, widths, right)).rstrip()
    rule = '-' * len(line(tuple('-' * w for w in widths)))
    phase = caffe_pb2.Phase.Name(net.phase)
    layers = totals.get('layers', len(net.layers))
    out = ['%s (%s phase, %d layers)' % (net.name or 'net', phase, layers), '',
           line(header), rule] + [line(cells) for cells in body] + [rule, line(footer), '']
    params, flops, batch = totals['params'], totals['flops'], totals['batch']
    out.append('Parameters: {:,} ({}; {} as {})'.format(
        params, human(params), human(params * net.dtype.itemsize, 'B'), net.dtype.name))
    per_item = ' (%s per item)' % human(flops / batch, 'FLOP') if batch else ''
    out.append('Forward:    %s per pass%s%s' % (
        human(flops, 'FLOP'), ' of batch %d' % batch if batch else '', per_item))
    out.append('Blobs:      %s of %s data' % (human(totals['memory'], 'B'), net.dtype.name))
    if totals['hidden_splits']:
        count = totals['hidden_splits']
        out.append('(%d automatically inserted Split layer%s not shown)'
                   % (count, '' if count == 1 else 's'))
    if totals['unknown']:
        out.append('FLOPs not counted for: %s' % ', '.join(totals['unknown']))
    if totals.get('unknown_shapes'):
        out.append('Shapes not inferred without the data (the totals leave out the %d layer%s '
                   'marked ?):' % (totals['left_out'], '' if totals['left_out'] == 1 else 's'))
        out.extend('  ' + line for line in totals['unknown_shapes'])
    return '\n'.join(out)


def load_weights(net, weights):
    """Copy each comma-separated weights file into ``net`` (as ``Net.copy_from`` does); return the
    names of the file layers that carry weights, or None when an HDF5 file hides them."""
    names = []
    for path in (one.strip() for one in weights.split(',')):
        if not os.path.isfile(path):
            raise CctError('weights file not found: %s' % path)
        if path.endswith('.h5'):
            net.copy_from(path)
            names = None
            continue
        model = cct_io.read_net_binary(path)
        net.copy_trained_layers_from(model, path)
        if names is not None:
            names += [layer.name for layer in model.layer if len(layer.blobs)]
    return names


def run(args):
    if not os.path.isfile(args.model):
        raise CctError('net file not found: %s' % args.model)
    phase = phase_from_flag(args.phase, caffe_pb2.TEST)
    quiet = args.minloglevel is None
    saved_level = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)  # the table is the output; the build log is noise here
    try:
        param = cct_io.read_net_text(args.model)
        # The state as Net(file, phase, level, stages) sets it.
        param.state.phase = phase
        param.state.level = args.level
        param.state.stage.extend(stages_from_flag(args.stage))
        plan = Plan(param)
        net = Net(plan.param)
        for layer in net.layers:
            # The data layers that were built read one batch's shape; info needs no batches.
            if getattr(layer, 'prefetcher', None) is not None:
                layer.prefetcher.stop()
        loaded = load_weights(net, args.weights) if args.weights else None
    finally:
        logger.setLevel(saved_level)
    rows, totals = describe(plan, net)
    print(format_table(net, rows, totals))
    if args.weights:
        with_params = [row['name'] for row in rows if row['params']]
        if loaded is None:
            print('Weights:    loaded from %s' % args.weights)
        else:
            missing = [name for name in with_params if name not in loaded]
            ignored = sorted(set(loaded) - {layer.name for layer in plan.filtered.layer})
            unchecked = [row['name'] for row in rows if row['params'] is None and
                         row['name'] in loaded]
            print('Weights:    %d of %d layers with parameters loaded from %s'
                  % (len(with_params) - len(missing), len(with_params), args.weights))
            if missing:
                print('            keeping their fillers: %s' % ', '.join(missing))
            if ignored:
                print('            not in this net (ignored): %s' % ', '.join(ignored))
            if unchecked:
                print('            not checked (their shapes are unknown): %s'
                      % ', '.join(unchecked))
    python = [layer for layer in plan.filtered.layer if layer.type == 'Python']
    if python:
        print('Python layers (building the net imported their modules, running their code):')
    for layer in python:
        module = sys.modules.get(layer.python_param.module)
        print("  '%s': class %s of module %s (%s)" % (
            layer.name, layer.python_param.layer, layer.python_param.module,
            getattr(module, '__file__', None) or 'not imported: the layer was not built'))
