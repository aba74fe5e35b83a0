"""Export a TEST-phase cct Net to an ONNX model: graph inputs from the net's inputs, one converter
per layer in net order, outputs named after the net's output blobs, the weights stored inside the
file (as external data beyond protobuf's 2 GB), and onnx.checker's full check."""
import os

import numpy as np

from cct.errors import ExportError, MissingPackageError, install_hint
from cct.export import elementwise, structure, vision  # noqa: F401  (register the converters)
from cct.export.batch import check_batch_follows, infer_dims
from cct.export.fold import fold_affine
from cct.export.graph import CONVERTERS, MIN_OPSET, Graph, Tensor
from cct.io.protofiles import write_bytes
from cct.proto import caffe_pb2

DEFAULT_OPSET = 17
# Data layers whose tops the exported model takes as inputs (their declared batch, crop, shape).
DATA_LAYERS = {'Data', 'ImageData', 'HDF5Data', 'MemoryData', 'DummyData', 'WindowData'}
# Protobuf cannot serialise a message of 2 GB; stay clear of it and store weights beside the file.
EXTERNAL_DATA_BYTES = 1_800_000_000


def import_onnx():
    try:
        import onnx
    except ImportError:
        raise MissingPackageError('exporting to ONNX needs the onnx package, which is not '
                                  'installed: ' + install_hint('onnx', 'onnx>=1.14')) from None
    return onnx


def _input_blobs(net):
    """(blob name, blob) of every graph input: the tops of Input layers and data layers that some
    layer reads (a label nobody reads is left out, as it feeds nothing exported)."""
    consumed = {net.blob_names[i] for ids in net.bottom_ids for i in ids}
    found = []
    for layer, top_ids in zip(net.layers, net.top_ids):
        if layer.type == 'Input' or layer.type in DATA_LAYERS:
            for blob_id in top_ids:
                name = net.blob_names[blob_id]
                if layer.type == 'Input' or name in consumed:
                    found.append((name, net.blobs_list[blob_id]))
    return found


def _check_opset(onnx, opset):
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise ExportError('opset %d is not supported: cct exports opsets %d to %d (the newest '
                          'this onnx package knows)' % (opset, MIN_OPSET, newest))


def export_onnx(net, path, opset=DEFAULT_OPSET, batch=None, dynamic_batch=False):
    """Write ``net`` (built in phase TEST, weights loaded) as an ONNX model at ``path``.

    Args:
        net: a cct Net in phase TEST.
        path: the .onnx file to write.
        opset: the ONNX opset (13 or newer).
        batch: export at this batch size instead of the inputs' current one.
        dynamic_batch: make the batch axis of every input and output symbolic ('N').

    Returns:
        The ``onnx.ModelProto`` written (its weights moved out when stored as external data).

    Raises:
        ExportError: a layer or option ONNX cannot express exactly (naming both), a net that is
            not in phase TEST, or an input without a fixed shape.
    """
    onnx = import_onnx()
    _check_opset(onnx, opset)
    if batch is not None and dynamic_batch:
        raise ExportError('give either a fixed batch size or a dynamic batch, not both')
    if batch is not None and batch <= 0:
        raise ExportError('the batch size must be positive (got %d)' % batch)
    if net.phase != caffe_pb2.TEST:
        raise ExportError("net '%s' is in phase %s; build it in phase TEST to export it (Dropout "
                          'and BatchNorm export their TEST behaviour)'
                          % (net.name, caffe_pb2.Phase.Name(net.phase)))
    inputs = _input_blobs(net)
    if not inputs:
        raise ExportError("net '%s' has no inputs (no Input layer, input field or data layer)"
                          % net.name)
    saved = [blob.shape for _, blob in inputs]
    try:
        if batch is not None:
            for _, blob in inputs:
                if blob.ndim:
                    blob.reshape((batch,) + tuple(blob.shape[1:]))
            net.reshape()
            for name, blob in inputs:
                if blob.ndim and blob.shape[0] != batch:
                    raise ExportError("input '%s' of net '%s' keeps batch size %d (its data layer "
                                      'sets it); change the batch size in the prototxt'
                                      % (name, net.name, blob.shape[0]))
        for name, blob in inputs:
            if not blob.ndim or 0 in blob.shape:
                raise ExportError("input '%s' of net '%s' has no fixed shape (%s); declare it in "
                                  'the prototxt%s' % (name, net.name, blob.shape or 'none',
                                                      ', or pass a batch size' if blob.ndim
                                                      and blob.shape[0] == 0 else ''))
        model = _build(onnx, net, inputs, opset, dynamic_batch)
    finally:
        for (_, blob), shape in zip(inputs, saved):
            blob.reshape(shape)
        net.reshape()
    return _save(onnx, model, os.fspath(path))


def _build(onnx, net, inputs, opset, dynamic_batch):
    helper = onnx.helper
    g = Graph(opset, reserved=net.blob_names, dynamic_batch=dynamic_batch)
    current = {}   # blob name -> the ONNX tensor holding its latest value
    graph_inputs = []
    batches = {blob.shape[0] for _, blob in inputs}
    if dynamic_batch and len(batches) > 1:
        raise ExportError('a dynamic batch needs every input to share one batch size (got %s)'
                          % sorted(batches))
    for name, blob in inputs:
        current[name] = g.claim(name)
        dims = list(blob.shape)
        if dynamic_batch:
            dims[0] = 'N'
        graph_inputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims))
    input_names = set(current)
    input_layers = {index for index, layer in enumerate(net.layers)
                    if layer.type == 'Input' or layer.type in DATA_LAYERS}
    written = []   # (tensor, layer index, blob id) of every top a layer's nodes computed
    last_writer = {}
    for index, top_ids in enumerate(net.top_ids):
        for blob_id in top_ids:
            last_writer[net.blob_names[blob_id]] = index
    for index, layer in enumerate(net.layers):
        if index in input_layers:
            continue
        name = net.layer_names[index]
        convert = CONVERTERS.get(layer.type)
        if convert is None:
            raise ExportError("layer '%s' (type %s) cannot be exported to ONNX: no converter for "
                              'type %s (cct exports %s)' % (name, layer.type, layer.type,
                                                            ', '.join(sorted(CONVERTERS))))
        g.layer = name
        bottoms = [Tensor(current[net.blob_names[i]], net.blobs_list[i].shape)
                   for i in net.bottom_ids[index]]
        tops, claimed = [], []
        for blob_id in net.top_ids[index]:
            blob_name = net.blob_names[blob_id]
            # A blob's own name goes to its final value; earlier in-place values get fresh names.
            if last_writer[blob_name] == index and blob_name not in g.used:
                tensor = g.claim(blob_name)
                claimed.append(tensor)
            else:
                tensor = g.fresh('%s/%s' % (name, blob_name))
            tops.append(Tensor(tensor, net.blobs_list[blob_id].shape))
        first_node = len(g.nodes)
        results = convert(g, layer, bottoms, tops)
        assert len(results) == len(tops), (name, results)
        produced = {output for node in g.nodes[first_node:] for output in node.output}
        for tensor in claimed:
            if tensor not in produced:
                g.used.discard(tensor)   # aliased instead: the name stays free for an output
        for blob_id, result in zip(net.top_ids[index], results):
            current[net.blob_names[blob_id]] = result
            if result in produced:
                written.append((result, index, blob_id))
    # Not graph outputs: an input passed through unchanged, and a data layer's unread label.
    outputs = [name for name in net.outputs if name in current and
               (name not in input_names or current[name] != name)]
    for name in outputs:
        if current[name] != name:
            if name in input_names:
                raise ExportError("blob '%s' is both an input of net '%s' and, changed in place, "
                                  'one of its outputs; an ONNX graph needs distinct input and '
                                  'output names (give the in-place layers a new top)'
                                  % (name, net.name))
            g.layer = name
            g.op('Identity', [current[name]], g.claim(name))
    g.nodes = fold_affine(onnx, g, keep=outputs)
    if dynamic_batch:
        inferred = infer_dims(onnx, g, graph_inputs, outputs)
        dims = [inferred.get(name) or [None] * len(net.blob_by_name(name).shape)
                for name in outputs]
        if all(net.layers[i].type == 'Input' for i in input_layers):
            # (A data layer sets its own batch size whatever its top is reshaped to.)
            check_batch_follows(net, inputs, written, inferred)
    else:
        dims = [list(net.blob_by_name(name).shape) for name in outputs]
    model = g.model
    model.graph.name = net.name or 'cct_net'
    model.graph.node.extend(g.nodes)
    model.graph.input.extend(graph_inputs)
    model.graph.output.extend(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, one)
                              for name, one in zip(outputs, dims))
    opsets = [helper.make_opsetid('', opset)]
    model.opset_import.extend(opsets)
    model.ir_version = helper.find_min_ir_version_for(opsets)
    model.producer_name = 'cct'
    from cct import __version__
    model.producer_version = __version__
    return model


def _save(onnx, model, path):
    weight_bytes = sum(int(np.prod(t.dims, dtype=np.int64)) * 4 for t in model.graph.initializer)
    try:
        if weight_bytes < EXTERNAL_DATA_BYTES:
            # Serialised once: the full check and the file read the same bytes.
            data = model.SerializeToString()
            onnx.checker.check_model(data, full_check=True)
            write_bytes(data, path)
        else:
            location = os.path.basename(path) + '.data'
            if os.path.exists(os.path.join(os.path.dirname(path), location)):
                os.remove(os.path.join(os.path.dirname(path), location))   # onnx appends to it
            onnx.save_model(model, path, save_as_external_data=True,
                            all_tensors_to_one_file=True, location=location, size_threshold=1024)
            onnx.checker.check_model(path, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ExportError('the exported model fails onnx.checker: %s' % error) from None
    except OSError as error:
        raise ExportError('cannot write %s: %s' % (path, error.strerror or error)) from None
    return model
