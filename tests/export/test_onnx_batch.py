"""cct/export/batch.py: with a dynamic batch, the outputs' shapes carry the symbolic 'N', and an
export in which some layer's output would not follow the batch as cct's does is refused, naming
the layer."""
import onnx
import pytest

from cct.export import ExportError
from cct.export import graph as export_graph
from onnx_helpers import assert_matches, net_from_text, randomize

NET = '''name: "b"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 4 } } }
layer { name: "flat" type: "Flatten" bottom: "data" top: "flat" }
layer { name: "sum" type: "Reduction" bottom: "data" top: "sum" reduction_param { axis: 1 } }
'''


def test_outputs_carry_the_symbolic_batch(tmp_path):
    net = net_from_text(NET)
    net.export_onnx(tmp_path / 'b.onnx', dynamic_batch=True)
    outputs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
               for o in onnx.load(str(tmp_path / 'b.onnx')).graph.output}
    assert outputs == {'flat': ['N', 12], 'sum': ['N']}
    assert net.blobs['data'].shape == (2, 3, 4)   # the net keeps its own shapes
    assert net.blobs['flat'].shape == (2, 12)
    assert_matches(net, tmp_path / 'b.onnx', [1, 5])


def test_a_layer_that_fixes_the_batch_is_named(tmp_path, monkeypatch):
    # A converter that (wrongly) bakes the traced shape into its Reshape.
    def static_flatten(g, layer, bottoms, tops):
        return [g.reshape(bottoms[0].name, list(tops[0].shape), tops[0].name)]
    monkeypatch.setitem(export_graph.CONVERTERS, 'Flatten', static_flatten)
    net = net_from_text(NET)
    with pytest.raises(ExportError, match=r"layer 'flat' \(type Flatten\) does not follow a "
                       r"dynamic batch in the export: at batch 3 its top 'flat' is \(3, 12\) in "
                       r"cct and \(2, 12\) in the ONNX graph"):
        net.export_onnx(tmp_path / 'b.onnx', dynamic_batch=True)
    net.export_onnx(tmp_path / 'fixed.onnx')    # a fixed batch is exact
    assert_matches(net, tmp_path / 'fixed.onnx', [2])


def test_a_net_that_only_runs_at_its_batch_is_refused(tmp_path):
    net = randomize(net_from_text(NET.replace('dim: 2', 'dim: 1') + 'layer { name: "r" type: '
                                  '"Reshape" bottom: "flat" top: "r" reshape_param { shape { '
                                  'dim: 12 } } }'))
    with pytest.raises(ExportError, match="net 'b' does not run at another batch size, so it "
                       'cannot be exported with a dynamic batch'):
        net.export_onnx(tmp_path / 'b.onnx', dynamic_batch=True)
    net.export_onnx(tmp_path / 'fixed.onnx')
    assert_matches(net, tmp_path / 'fixed.onnx', [1])
