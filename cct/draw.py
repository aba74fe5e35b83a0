"""Drawing a NetParameter as a graph (pycaffe's python/caffe/draw.py), through pydot and Graphviz.

Layers are record boxes coloured by type (convolutions red, pooling orange, inner products purple,
others blue; in-place neuron layers green), blobs are octagons, edges out of a layer carry its
num_output (or 'Batch N' for Data). ``phase`` filters on ``include``/``exclude`` *phase* only, as
pycaffe does. Layout and rendering need Graphviz's ``dot``: the one on PATH if there is one,
otherwise the self-contained ``graphviz-pure`` program from PyPI (cct's ``draw`` extra), so no
system package is needed.
"""
import os
import shutil
import sysconfig

from cct.errors import CctError, MissingPackageError, install_hint
from cct.proto import caffe_pb2

LAYER_STYLE_DEFAULT = {'shape': 'record', 'fillcolor': '#6495ED', 'style': 'filled'}
NEURON_LAYER_STYLE = {'shape': 'record', 'fillcolor': '#90EE90', 'style': 'filled'}
BLOB_STYLE = {'shape': 'octagon', 'fillcolor': '#E0E0E0', 'style': 'filled'}

# Formats that are the DOT text itself rather than a rendering.
_TEXT_FORMATS = ('raw', 'dot', 'gv')


def _pydot():
    try:
        import pydot
    except ImportError:
        raise MissingPackageError('drawing a net needs pydot, which is not installed: '
                                  + install_hint('draw', 'pydot>=3', 'graphviz-pure>=0.2')) from None
    return pydot


def graphviz_program():
    """Path of the Graphviz layout program: ``$CCT_DOT``, else ``dot`` on PATH, else
    ``graphviz-pure`` (on PATH or next to this Python). Raises CctError when none exists."""
    candidates = [os.environ.get('CCT_DOT'), shutil.which('dot'), shutil.which('graphviz-pure'),
                  os.path.join(sysconfig.get_path('scripts'), 'graphviz-pure')]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise CctError("drawing a net needs Graphviz's dot on PATH, or the self-contained "
                   'graphviz-pure: ' + install_hint('draw', 'pydot>=3', 'graphviz-pure>=0.2'))


def get_pooling_types_dict():
    """{pooling method number: name}, e.g. {0: 'MAX', 1: 'AVE', 2: 'STOCHASTIC'}."""
    return {value.number: name for name, value in
            caffe_pb2.PoolingParameter.PoolMethod.DESCRIPTOR.values_by_name.items()}


def get_edge_label(layer):
    """Label of the edges out of ``layer``: its batch size or number of outputs."""
    if layer.type == 'Data':
        return 'Batch ' + str(layer.data_param.batch_size)
    if layer.type in ('Convolution', 'Deconvolution'):
        return str(layer.convolution_param.num_output)
    if layer.type == 'InnerProduct':
        return str(layer.inner_product_param.num_output)
    return '""'


def get_layer_lr_mult(layer):
    """(weight lr_mult, bias lr_mult) of a Convolution/Deconvolution/InnerProduct layer."""
    if layer.type not in ('Convolution', 'Deconvolution', 'InnerProduct'):
        raise ValueError('%s layers do not have a learning rate multiplier' % layer.type)
    params = layer.param
    if len(params) == 0:
        return (1.0, 1.0)
    if len(params) == 1:
        return (params[0].lr_mult, 1.0)
    if len(params) == 2:
        return (params[0].lr_mult, params[1].lr_mult)
    raise ValueError('Could not parse the learning rate multiplier of layer %r (%d param specs)'
                     % (layer.name, len(params)))


def get_layer_label(layer, rankdir, display_lrm=False):
    """The quoted node label: name, (type), kernel/stride/pad for spatial layers, lr mults."""
    # Vertical layouts have room across, horizontal ones down.
    separator = ' ' if rankdir in ('TB', 'BT') else r'\n'
    descriptors = [layer.name]
    if layer.type == 'Pooling':
        descriptors.append('(%s %s)' % (layer.type,
                                        get_pooling_types_dict()[layer.pooling_param.pool]))
    else:
        descriptors.append('(%s)' % layer.type)
    if layer.type in ('Convolution', 'Deconvolution', 'Pooling'):
        if layer.type == 'Pooling':
            pool = layer.pooling_param
            kernel_size, stride, padding = pool.kernel_size, pool.stride, pool.pad
        else:
            # Only the first of the repeated values is shown; kernel_h/kernel_w are ignored.
            conv = layer.convolution_param
            kernel_size = conv.kernel_size[0] if len(conv.kernel_size) else 1
            stride = conv.stride[0] if len(conv.stride) else 1
            padding = conv.pad[0] if len(conv.pad) else 0
        descriptors.append(separator.join(['kernel size: %d' % kernel_size, 'stride: %d' % stride,
                                           'pad: %d' % padding]))
    if display_lrm and layer.type in ('Convolution', 'Deconvolution', 'InnerProduct'):
        lrm0, lrm1 = get_layer_lr_mult(layer)
        if any([lrm0, lrm1]):
            descriptors.append('lr mult: %.1f, %.1f' % (lrm0, lrm1))
    # Outer quotes keep the colons from being read as DOT ports.
    return '"%s"' % separator.join(descriptors)


def choose_color_by_layertype(layertype):
    """Fill colour of a layer node."""
    return {'Convolution': '#FF5050', 'Deconvolution': '#FF5050', 'Pooling': '#FF9900',
            'InnerProduct': '#CC33FF'}.get(layertype, '#6495ED')


def _included(layer, phase):
    if len(layer.include) and len(layer.exclude):
        raise ValueError('layer %s has both include and exclude specified.' % layer.name)
    included = not len(layer.include)
    for rule in layer.include:
        included = included or rule.phase == phase
    for rule in layer.exclude:
        included = included and not rule.phase == phase
    return included


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None, display_lrm=False):
    """A pydot graph of a NetParameter.

    Args:
        caffe_net: ``caffe_pb2.NetParameter`` (not a Net).
        rankdir: 'LR', 'TB', 'BT' or 'RL' (Graphviz's rankdir).
        label_edges: label layer -> blob edges with num_output / batch size.
        phase: ``TRAIN`` or ``TEST`` to draw that phase's layers only; None draws all.
        display_lrm: add the lr_mult of Convolution/Deconvolution/InnerProduct layers.

    Returns:
        pydot.Dot, set up to render with the Graphviz program cct found.
    """
    pydot = _pydot()
    graph = pydot.Dot(caffe_net.name if caffe_net.name else 'Net', graph_type='digraph',
                      rankdir=rankdir)
    nodes = {}
    edges = []
    for layer in caffe_net.layer:
        if phase is not None and not _included(layer, phase):
            continue
        node_label = get_layer_label(layer, rankdir, display_lrm=display_lrm)
        node_name = '%s_%s' % (layer.name, layer.type)
        if len(layer.bottom) == 1 and len(layer.top) == 1 and layer.bottom[0] == layer.top[0]:
            nodes[node_name] = pydot.Node(node_label, **NEURON_LAYER_STYLE)
        else:
            style = dict(LAYER_STYLE_DEFAULT, fillcolor=choose_color_by_layertype(layer.type))
            nodes[node_name] = pydot.Node(node_label, **style)
        for bottom_blob in layer.bottom:
            nodes[bottom_blob + '_blob'] = pydot.Node('%s' % bottom_blob, **BLOB_STYLE)
            edges.append((bottom_blob + '_blob', node_name, '""'))
        for top_blob in layer.top:
            # pycaffe gives tops no style, so a blob's look is that of its last mention: blobs
            # never consumed afterwards (outputs, in-place results) are plain ellipses.
            nodes[top_blob + '_blob'] = pydot.Node('%s' % top_blob)
            edges.append((node_name, top_blob + '_blob',
                          get_edge_label(layer) if label_edges else '""'))
    for node in nodes.values():
        graph.add_node(node)
    for src, dst, label in edges:
        graph.add_edge(pydot.Edge(nodes[src], nodes[dst], label=label))
    try:
        graph.prog = graphviz_program()
    except CctError:
        pass  # the DOT text is still usable; rendering says what is missing
    return graph


def draw_net(caffe_net, rankdir, ext='png', phase=None, display_lrm=False):
    """The drawing of ``caffe_net`` as bytes in format ``ext`` ('png', 'svg', 'jpg', ...; 'raw',
    'dot' or 'gv' give the DOT text)."""
    graph = get_pydot_graph(caffe_net, rankdir, phase=phase, display_lrm=display_lrm)
    if ext in _TEXT_FORMATS:
        return graph.to_string().encode('utf-8')
    program = graphviz_program()
    try:
        return graph.create(prog=program, format=ext)
    except (OSError, AssertionError) as e:
        raise CctError('Graphviz (%s) could not draw the net as %r: %s' % (program, ext, e)) from e


def draw_net_to_file(caffe_net, filename, rankdir='LR', phase=None, display_lrm=False):
    """Draw ``caffe_net`` into ``filename``, in the format its extension names."""
    ext = filename[filename.rfind('.') + 1:]
    image = draw_net(caffe_net, rankdir, ext, phase, display_lrm)
    with open(filename, 'wb') as fid:
        fid.write(image)
