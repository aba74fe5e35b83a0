"""Folding of the per-channel affine steps the converters emit (BatchNorm's normalisation, Scale,
Bias, constant multipliers): a chain of Mul/Add by constants becomes one Mul and one Add, and that
folds into the Conv or Gemm before it. Each fold is exact algebra,
(x·a + b)·c + d = x·(ac) + (bc + d); in float32 it rounds differently by about one unit in the last
place, well inside the export's 1e-4 agreement with cct."""
import numpy as np


def _consumers(nodes):
    counts = {}
    for node in nodes:
        for name in node.input:
            counts[name] = counts.get(name, 0) + 1
    return counts


class _Folder:
    def __init__(self, onnx, graph, keep):
        self.onnx = onnx
        self.graph = graph
        self.keep = set(keep)     # tensors that must survive: the graph's outputs
        self.constants = {t.name: t for t in graph.initializers
                          if t.data_type == onnx.TensorProto.FLOAT}

    def constant(self, name):
        tensor = self.constants.get(name)
        return None if tensor is None else self.onnx.numpy_helper.to_array(tensor) \
            .astype(np.float64)

    def affine_step(self, node):
        """(kind, constant) when ``node`` is Mul or Add of a tensor by a float constant."""
        if node.op_type not in ('Mul', 'Add') or len(node.input) != 2:
            return None
        value = self.constant(node.input[1])
        return None if value is None else (node.op_type, value)

    def run(self, nodes):
        consumers = _consumers(nodes)
        producer = {output: i for i, node in enumerate(nodes) for output in node.output}
        dropped, replaced = set(), {}
        for i, node in enumerate(nodes):
            if i in dropped or self.affine_step(node) is None:
                continue
            # Extend the chain while each link's only reader is the next affine step.
            chain = [i]
            while True:
                tail = nodes[chain[-1]].output[0]
                if consumers.get(tail, 0) != 1 or tail in self.keep:
                    break
                following = next((j for j in range(chain[-1] + 1, len(nodes))
                                  if tail in nodes[j].input), None)
                if following is None or self.affine_step(nodes[following]) is None or \
                        nodes[following].input[0] != tail:
                    break
                chain.append(following)
            source = nodes[i].input[0]
            scale, shift = np.ones(()), np.zeros(())
            for j in chain:
                kind, value = self.affine_step(nodes[j])
                if kind == 'Mul':
                    scale, shift = scale * value, shift * value
                else:
                    shift = shift + value
            out = nodes[chain[-1]].output[0]
            into = producer.get(source)
            if into is not None and into not in dropped and consumers.get(source, 0) == 1 and \
                    source not in self.keep and self._fold_into(nodes, into, scale, shift, out):
                dropped.update(chain)
                continue
            if len(chain) == 1 and not (nodes[i].op_type == 'Mul' and scale.ndim == 0 and
                                        scale == 1):
                continue   # already a single step
            dropped.update(chain)
            replaced[chain[0]] = self._affine_nodes(source, scale, shift, out)
        result = []
        for i, node in enumerate(nodes):
            result.extend(replaced.get(i, []))
            if i not in dropped:
                result.append(node)
        return result

    def _affine_nodes(self, source, scale, shift, out):
        g = self.graph
        g.layer = out
        made = []
        if not np.all(scale == 1):
            name = out if np.all(shift == 0) else g.fresh(out + '/folded_scale')
            made.append(g.helper.make_node('Mul', [source, g.const(scale, 'folded_scale')],
                                           [name], name=g.fresh(out + '/Mul')))
            source = name
        if not np.all(shift == 0) or not made:
            made.append(g.helper.make_node('Add', [source, g.const(shift, 'folded_shift')],
                                           [out], name=g.fresh(out + '/Add')))
        return made

    def _fold_into(self, nodes, index, scale, shift, out):
        """Fold ``x·scale + shift`` into the Conv (per output channel) or Gemm (per column) at
        ``index``, renaming its output to ``out``; False when the shapes do not allow it."""
        node = nodes[index]
        attrs = {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == 'Conv':
            weight = self.constant(node.input[1])
            channels = weight.shape[0] if weight is not None else 0
            per_channel = (channels, 1, 1)
        elif node.op_type == 'Gemm' and attrs.get('transB') == 1 and \
                attrs.get('alpha', 1.0) == 1.0 and attrs.get('beta', 1.0) == 1.0:
            weight = self.constant(node.input[1])
            channels = weight.shape[0] if weight is not None else 0
            per_channel = (channels,)
        else:
            return False
        if weight is None:
            return False
        try:
            scale_c = np.broadcast_to(scale, per_channel).reshape(channels)
            shift_c = np.broadcast_to(shift, per_channel).reshape(channels)
        except ValueError:
            return False   # the constants vary along other axes too
        bias = self.constant(node.input[2]) if len(node.input) > 2 else np.zeros(channels)
        if bias is None:
            return False
        g = self.graph
        g.layer = out
        scaled = weight * scale_c.reshape((channels,) + (1,) * (weight.ndim - 1))
        inputs = [node.input[0], g.const(scaled, 'folded_weight'),
                  g.const(bias * scale_c + shift_c, 'folded_bias')]
        nodes[index] = g.helper.make_node(node.op_type, inputs, [out], name=node.name, **attrs)
        return True


def fold_affine(onnx, graph, keep):
    """Return ``graph.nodes`` with affine chains folded; drop initializers nothing reads now."""
    nodes = _Folder(onnx, graph, keep).run(list(graph.nodes))
    read = {name for node in nodes for name in node.input}
    for index in range(len(graph.initializers) - 1, -1, -1):
        if graph.initializers[index].name not in read:
            del graph.initializers[index]
    return nodes
