"""The ONNX graph under construction: nodes, weights (initializers), unique tensor names, and the
helpers whose spelling changed between opsets (reductions, Split, Slice), so layer converters stay
opset-agnostic."""
from collections import namedtuple

import numpy as np

from cct.errors import ExportError

# A tensor a converter reads or writes: its ONNX name and the shape cct gives that blob.
Tensor = namedtuple('Tensor', 'name shape')

MIN_OPSET = 13   # Softmax over one axis (not the flattened tail) and Split/ReduceSum taking inputs


class Graph:
    """Nodes and initializers in creation order, with names unique across the whole graph.

    ``reserved`` names (every Caffe blob name) are never handed out as temporaries, so a blob's own
    name stays free for the tensor that finally holds it.
    """

    def __init__(self, opset, reserved=(), dynamic_batch=False):
        import onnx
        self.onnx = onnx
        self.helper = onnx.helper
        self.opset = opset
        # Weights go straight into the model's own initializer list: a 240 MB net is copied
        # once (to bytes), not again by onnx.helper's make_graph and make_model.
        self.model = onnx.ModelProto()
        self.nodes, self.initializers = [], self.model.graph.initializer
        self.used, self.node_names = set(), set()
        self.reserved = set(reserved)
        self.layer = 'graph'   # the layer being converted: names its nodes and temporaries
        self.dynamic_batch = dynamic_batch   # the batch axis is symbolic: never bake its size

    # ------------------------------------------------------------------ names
    def fresh(self, hint):
        """A new tensor name derived from ``hint``, unused and not a reserved blob name."""
        name, index = hint, 1
        while name in self.used or name in self.reserved:
            index += 1
            name = '%s_%d' % (hint, index)
        self.used.add(name)
        return name

    def claim(self, name):
        """Take ``name`` (a blob's own name) for a tensor; it must not be taken yet."""
        assert name not in self.used, name
        self.used.add(name)
        return name

    # ------------------------------------------------------------------ building
    def const(self, values, hint='const', dtype=np.float32):
        """An initializer holding ``values``; returns its name."""
        array = np.ascontiguousarray(np.asarray(values, dtype=np.dtype(dtype).newbyteorder('<')))
        name = self.fresh('%s/%s' % (self.layer, hint))
        tensor = self.initializers.add()
        tensor.name = name
        tensor.data_type = self.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        tensor.dims.extend(array.shape)
        tensor.raw_data = array.tobytes()
        return name

    def ints(self, values, hint='shape'):
        return self.const(np.asarray(values, np.int64).reshape(-1), hint, np.int64)

    def op(self, op_type, inputs, outputs=None, num_outputs=1, **attrs):
        """Append a node; ``outputs`` (a name or list) or fresh names. Returns the output name, or
        the list of them when there are several."""
        if outputs is None:
            outputs = [self.fresh('%s/%s' % (self.layer, op_type)) for _ in range(num_outputs)]
        elif isinstance(outputs, str):
            outputs = [outputs]
        node_name, index = '%s/%s' % (self.layer, op_type), 1
        while node_name in self.node_names:   # node names live in their own namespace
            index += 1
            node_name = '%s/%s_%d' % (self.layer, op_type, index)
        self.node_names.add(node_name)
        self.nodes.append(self.helper.make_node(op_type, list(inputs), list(outputs),
                                                name=node_name, **attrs))
        return outputs[0] if len(outputs) == 1 else list(outputs)

    # ------------------------------------------------------------------ opset-dependent spellings
    def reduce(self, op_type, x, axes, keepdims, out=None):
        """ReduceSum/ReduceMean/ReduceL1/ReduceSumSquare over ``axes``: axes became an input for
        ReduceSum at opset 13 and for the others at 18."""
        as_input = self.opset >= (13 if op_type == 'ReduceSum' else 18)
        if as_input:
            return self.op(op_type, [x, self.ints(axes, 'axes')], out, keepdims=int(keepdims))
        return self.op(op_type, [x], out, axes=list(axes), keepdims=int(keepdims))

    def split(self, x, axis, sizes, outputs):
        """Split along ``axis`` into pieces of ``sizes`` (an input since opset 13)."""
        return self.op('Split', [x, self.ints(sizes, 'split')], outputs, axis=axis)

    def slice(self, x, starts, ends, axes, steps=None, out=None):
        inputs = [x, self.ints(starts, 'starts'), self.ints(ends, 'ends'), self.ints(axes, 'axes')]
        if steps is not None:
            inputs.append(self.ints(steps, 'steps'))
        return self.op('Slice', inputs, out)

    def reshape(self, x, shape, out=None):
        """Reshape with ONNX's rules (0 copies the input's dim at that index, -1 is inferred),
        which are Caffe's Reshape rules when the leading axes are kept."""
        return self.op('Reshape', [x, self.ints(shape)], out)


CONVERTERS = {}


def converts(*layer_types):
    """Register a converter ``fn(graph, layer, bottoms, tops) -> [top tensor names]`` for Caffe
    layer types. ``bottoms`` and ``tops`` are Tensors; a converter names its final nodes'
    outputs after ``tops`` (or returns a bottom's name to alias it, as Split does)."""
    def register(fn):
        for layer_type in layer_types:
            assert layer_type not in CONVERTERS, layer_type
            CONVERTERS[layer_type] = fn
        return fn
    return register


def refuse(layer, option, why):
    """Raise the one error for a layer option ONNX cannot express exactly."""
    raise ExportError("layer '%s' (type %s): %s cannot be exported to ONNX exactly: %s"
                      % (layer.name, layer.type, option, why))
