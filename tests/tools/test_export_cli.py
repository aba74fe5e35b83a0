"""``cct export`` (cct/tools/export.py) and the export's bad-input errors: real Caffe's
lenet_iter_10000 exported and run by ONNX Runtime scores the MNIST test set at Caffe's 0.9914;
--batch, --dynamic-batch and --opset shape the file; a data layer's declared shape becomes the
input; weights go to external data above the size limit; unsupported layers and options, a net
without a fixed input shape, missing files and impossible opsets each end in one clear line."""
import os
import sys

import numpy as np
import onnx
import pytest

from cct import cli
from cct.export import ExportError, exporter
from cct.net import Net
from cct.proto import caffe_pb2

# The export tests' shared helpers (tests/export is a directory of tests, not a package).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'export'))
from onnx_helpers import assert_matches, net_from_text, randomize, session  # noqa: E402
from test_lenet_golden import read_idx  # noqa: E402

IP_NET = '''name: "ip"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: %d dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 } }
%s'''


def run(capsys, *argv):
    status = cli.main([str(a) for a in argv] + ['-minloglevel', '1'])
    captured = capsys.readouterr()
    return status, captured.err


def _weights_for(tmp_path, text):
    """A prototxt and a .caffemodel of random weights for it."""
    model = tmp_path / 'net.prototxt'
    model.write_text(text)
    net = randomize(net_from_text(text.replace('dim: 0 ', 'dim: 1 ')))
    net.save(tmp_path / 'net.caffemodel')
    return model, tmp_path / 'net.caffemodel', net


def test_lenet_iter_10000_scores_mnist_like_caffe(shared, tmp_path, capsys):
    out = tmp_path / 'lenet.onnx'
    status, err = run(capsys, 'export', os.path.join(shared, 'nets', 'lenet.prototxt'),
                      '--weights', os.path.join(shared, 'models', 'lenet_iter_10000.caffemodel'),
                      '--onnx', out, '--dynamic-batch')
    assert status == 0, err
    images = read_idx(os.path.join(shared, 'data', 'mnist', 't10k-images-idx3-ubyte.gz'))
    labels = read_idx(os.path.join(shared, 'data', 'mnist', 't10k-labels-idx1-ubyte.gz'))
    runner = session(out)
    correct, losses = 0, []
    for start in range(0, len(labels), 1000):
        # lenet_train_test.prototxt scales pixels by 0.00390625 = 1/256.
        batch = images[start:start + 1000, None].astype(np.float32) * np.float32(0.00390625)
        prob, = runner.run(['prob'], {'data': batch})
        truth = labels[start:start + 1000]
        correct += int((prob.argmax(axis=1) == truth).sum())
        losses.append(-np.log(np.maximum(prob[np.arange(len(truth)), truth], 1e-37)).mean())
    assert correct == 9914            # Caffe's accuracy, 0.9914
    assert float(np.mean(losses)) == pytest.approx(0.02727, abs=1e-4)


def test_batch_and_opset_flags(tmp_path, capsys):
    model, weights, net = _weights_for(tmp_path, IP_NET % (7, ''))
    out = tmp_path / 'ip.onnx'
    status, err = run(capsys, 'export', model, '-weights', weights, '-onnx', out, '--batch', 3,
                      '--opset', 13)
    assert status == 0, err
    exported = onnx.load(str(out))
    assert [d.dim_value for d in exported.graph.input[0].type.tensor_type.shape.dim] == [3, 3]
    assert [o.name for o in exported.graph.output] == ['ip']
    assert exported.opset_import[0].version == 13
    assert_matches(net, out, [3])


def test_no_fixed_batch_needs_batch_flag(tmp_path, capsys):
    model, weights, net = _weights_for(tmp_path, IP_NET % (0, ''))
    out = tmp_path / 'ip.onnx'
    status, err = run(capsys, 'export', model, '--weights', weights, '--onnx', out)
    assert status == 1 and not out.exists()
    assert "input 'data' (layer 'data') has no fixed batch size" in err and '--batch' in err
    assert run(capsys, 'export', model, '--weights', weights, '--onnx', out, '--batch', 2)[0] == 0
    assert run(capsys, 'export', model, '--weights', weights, '--onnx', out,
               '--dynamic-batch')[0] == 0
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ['N', 3]
    assert_matches(net, out, [1, 5])


@pytest.mark.parametrize('argv, message', [
    (['--weights', 'missing.caffemodel'], 'weights file not found: missing.caffemodel'),
    ([], 'Need trained weights to export (--weights W.caffemodel)'),
    (['--weights', 'WEIGHTS', '--opset', '12'], 'opset 12 is not supported: cct exports opsets 13'),
    (['--weights', 'WEIGHTS', '--batch', '0'], '--batch must be positive'),
])
def test_bad_flags_are_one_line_errors(tmp_path, capsys, argv, message):
    model, weights, _ = _weights_for(tmp_path, IP_NET % (1, ''))
    argv = [weights if arg == 'WEIGHTS' else arg for arg in argv]
    status, err = run(capsys, 'export', model, '--onnx', tmp_path / 'x.onnx', *argv)
    assert status == 1
    assert err.count('\n') == 1 and err.startswith('cct export: error: ') and message in err


def test_export_without_onnx_is_one_line(tmp_path, capsys, monkeypatch, extras):
    model, weights, _ = _weights_for(tmp_path, IP_NET % (1, ''))
    monkeypatch.setitem(sys.modules, 'onnx', None)   # makes the import fail
    status, err = run(capsys, 'export', model, '--weights', weights, '--onnx', tmp_path / 'x.onnx')
    assert status == 1
    assert err == ('cct export: error: exporting to ONNX needs the onnx package, which is not '
                   'installed: pip install "onnx>=1.14" (or pip install -e ".[onnx]" in cct\'s '
                   'checkout)\n')
    assert extras['onnx'] == ['onnx>=1.14']


def test_missing_net_file(tmp_path, capsys):
    status, err = run(capsys, 'export', tmp_path / 'nope.prototxt', '--weights', 'w',
                      '--onnx', tmp_path / 'x.onnx')
    assert status == 1 and 'net file not found' in err


@pytest.mark.parametrize('extra, message', [
    ('layer { name: "lab" type: "Input" top: "label" input_param { shape { dim: 1 } } }\n'
     'layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }',
     "layer 'acc' (type Accuracy) cannot be exported to ONNX: no converter for type Accuracy"),
    ('layer { name: "r" type: "Reshape" bottom: "ip" top: "r" reshape_param { shape { dim: 0 '
     'dim: 2 dim: 1 dim: 1 } } }\nlayer { name: "p" type: "Pooling" bottom: "r" top: "p" '
     'top: "mask" pooling_param { pool: MAX kernel_size: 1 } }',
     "layer 'p' (type Pooling): a second top (the argmax mask) cannot be exported to ONNX"),
    ('layer { name: "r" type: "Reshape" bottom: "ip" top: "r" reshape_param { shape { dim: 0 '
     'dim: 2 dim: 1 dim: 1 } } }\nlayer { name: "p" type: "Pooling" bottom: "r" top: "p" '
     'pooling_param { pool: STOCHASTIC kernel_size: 1 } }',
     "layer 'p' (type Pooling): pool: STOCHASTIC cannot be exported to ONNX exactly"),
])
def test_inexpressible_layers_are_refused_by_name(tmp_path, capsys, extra, message):
    model, weights, _ = _weights_for(tmp_path, IP_NET % (1, extra))
    out = tmp_path / 'x.onnx'
    status, err = run(capsys, 'export', model, '--weights', weights, '--onnx', out)
    assert status == 1 and message in err and err.count('\n') == 1
    assert not out.exists()


def test_train_phase_net_is_refused(tmp_path):
    from cct.io.protofiles import parse_text
    net = Net(parse_text(IP_NET % (1, ''), caffe_pb2.NetParameter()), caffe_pb2.TRAIN)
    with pytest.raises(ExportError, match="net 'ip' is in phase TRAIN; build it in phase TEST"):
        net.export_onnx(tmp_path / 'x.onnx')


def test_input_changed_in_place_into_an_output_is_refused(tmp_path):
    net = net_from_text('name: "ip" layer { name: "data" type: "Input" top: "data" input_param '
                        '{ shape { dim: 1 dim: 3 } } }\n'
                        'layer { name: "r" type: "ReLU" bottom: "data" top: "data" }')
    with pytest.raises(ExportError, match="blob 'data' is both an input of net 'ip' and"):
        net.export_onnx(tmp_path / 'x.onnx')


def test_memory_data_layer_gives_the_input(tmp_path):
    # The data layer's declared batch and shape become the input; its unread label is left out.
    net = randomize(net_from_text(
        'name: "m" layer { name: "d" type: "MemoryData" top: "data" top: "label" '
        'memory_data_param { batch_size: 2 channels: 3 height: 4 width: 5 } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
        'inner_product_param { num_output: 3 } }'))
    out = tmp_path / 'm.onnx'
    net.export_onnx(out)
    exported = onnx.load(str(out))
    assert [i.name for i in exported.graph.input] == ['data']
    assert [d.dim_value for d in exported.graph.input[0].type.tensor_type.shape.dim] == \
        [2, 3, 4, 5]
    assert [o.name for o in exported.graph.output] == ['ip']
    with pytest.raises(ExportError, match="input 'data' of net 'm' keeps batch size 2"):
        net.export_onnx(out, batch=4)


def test_batch_flag_sets_a_data_layers_batch_size(tmp_path, capsys):
    text = ('name: "m" layer { name: "d" type: "MemoryData" top: "data" top: "label" '
            'memory_data_param { batch_size: 2 channels: 3 height: 4 width: 5 } }\n'
            'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
            'inner_product_param { num_output: 3 } }')
    model, weights, net = _weights_for(tmp_path, text)
    out = tmp_path / 'm.onnx'
    assert run(capsys, 'export', model, '--weights', weights, '--onnx', out, '--batch', 4)[0] == 0
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [4, 3, 4, 5]


def test_data_layer_declared_batch_and_crop_give_the_input(shared, tmp_path, capsys):
    # LeNet's train_test net in TEST phase reading Caffe's MNIST LMDB, cropped to 24x24, without
    # its Accuracy and loss: the Data layer's batch (from --batch) and crop shape the input.
    from cct.io import read_net_text, write_text
    param = read_net_text(os.path.join(shared, 'nets', 'lenet_train_test.prototxt'))
    layers = [layer for layer in param.layer if layer.type not in ('Accuracy', 'SoftmaxWithLoss')]
    del param.layer[:]
    for layer in layers:
        if layer.type == 'Data':
            layer.data_param.source = os.path.join(shared, 'data', 'mnist_test_lmdb_by_caffe')
            layer.transform_param.crop_size = 24
        param.layer.add().CopyFrom(layer)
    model = tmp_path / 'lenet_crop.prototxt'
    write_text(param, str(model))
    net = randomize(Net(str(model), caffe_pb2.TEST))
    net.save(tmp_path / 'w.caffemodel')
    out = tmp_path / 'lenet_crop.onnx'
    status, err = run(capsys, 'export', model, '--weights', tmp_path / 'w.caffemodel',
                      '--onnx', out, '--batch', 5)
    assert status == 0, err
    exported = onnx.load(str(out))
    assert [i.name for i in exported.graph.input] == ['data']   # the label feeds nothing
    assert [d.dim_value for d in exported.graph.input[0].type.tensor_type.shape.dim] == \
        [5, 1, 24, 24]
    assert [o.name for o in exported.graph.output] == ['ip2']
    want = net.forward()['ip2']          # cct reads (and crops) a batch of real digits
    got, = session(out).run(['ip2'], {'data': net.blobs['data'].data[:5]})
    np.testing.assert_allclose(got, want[:5], rtol=0, atol=1e-4 * np.abs(want).max())


def test_weights_beyond_the_limit_go_to_external_data(tmp_path, monkeypatch):
    monkeypatch.setattr(exporter, 'EXTERNAL_DATA_BYTES', 0)
    net = randomize(net_from_text(IP_NET.replace('dim: 3', 'dim: 300').replace(
        'num_output: 2', 'num_output: 100') % (1, '')))
    out = tmp_path / 'ext.onnx'
    net.export_onnx(out, dynamic_batch=True)
    assert (tmp_path / 'ext.onnx.data').stat().st_size >= 300 * 100 * 4
    inline = {t.name: len(t.raw_data) for t in onnx.load(str(out), load_external_data=False)
              .graph.initializer}
    assert inline['ip/weight'] == 0
    assert_matches(net, out, [1, 4])
