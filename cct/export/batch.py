"""A dynamic batch: the exported outputs' shapes with the symbolic batch 'N', from ONNX shape
inference, and the check that every exported layer's output follows the batch as cct's does."""
from cct.errors import CctError, ExportError


def infer_dims(onnx, g, graph_inputs, outputs):
    """Every tensor's inferred dims (ints, 'N', or None when unknown), from shape inference on
    the graph with the weights left out (declared as inputs of their shape, so inference copies no
    data)."""
    helper = onnx.helper
    weights = [t for t in g.initializers if t.data_type == onnx.TensorProto.FLOAT]
    constants = [t for t in g.initializers if t.data_type != onnx.TensorProto.FLOAT]
    declared = [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in weights]
    shell = helper.make_graph(g.nodes, 'shapes', graph_inputs + declared,
                              [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
                               for name in outputs], initializer=constants)
    opsets = [helper.make_opsetid('', g.opset)]
    inferred = onnx.shape_inference.infer_shapes(
        helper.make_model(shell, opset_imports=opsets,
                          ir_version=helper.find_min_ir_version_for(opsets)))
    dims = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.output):
        tensor_type = info.type.tensor_type
        if tensor_type.HasField('shape'):
            dims[info.name] = [dim.dim_param or dim.dim_value or None
                               for dim in tensor_type.shape.dim]
    return dims


def check_batch_follows(net, inputs, written, dims):
    """Shape the net at another batch size and compare each exported layer output's inferred
    dims with cct's blob shapes there: a layer whose export fixed the batch is an error naming it.

    ``written`` lists (tensor, layer index, blob id) for every top a layer's nodes computed.
    """
    batch = inputs[0][1].shape[0]
    grown = batch + 1
    for _, blob in inputs:
        blob.reshape((grown,) + tuple(blob.shape[1:]))
    try:
        net.reshape()
    except CctError as error:
        raise ExportError('net %r does not run at another batch size, so it cannot be exported '
                          'with a dynamic batch (at batch %d: %s); export it with a fixed batch'
                          % (net.name, grown, error)) from None
    for tensor, index, blob_id in written:
        exported = dims.get(tensor)
        actual = net.blobs_list[blob_id].shape
        if exported is None:
            continue
        expected = [grown if size == 'N' else size for size in exported]
        if len(expected) != len(actual) or any(
                size is not None and not isinstance(size, str) and size != real
                for size, real in zip(expected, actual)):
            layer = net.layers[index]
            raise ExportError("layer '%s' (type %s) does not follow a dynamic batch in the export: "
                              "at batch %d its top '%s' is %s in cct and %s in the ONNX graph; "
                              'export it with a fixed batch' % (
                                  net.layer_names[index], layer.type, grown,
                                  net.blob_names[blob_id], tuple(actual), tuple(exported)))
