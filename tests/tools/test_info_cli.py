"""``cct info`` (cct/tools/info.py): one aligned row per layer with top shapes, parameters and FLOPs
counted from types and shapes, totals in human units; CaffeNet's known 60,965,224 parameters;
weights loading reported; user errors as one line."""
import os

import pytest

from cct import cli
from cct.io import read_net_binary, write_binary
from cct.net import Net
from cct.proto import caffe_pb2
from cct.tools.info import forward_flops, human, summarize


def run(capsys, *argv):
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def rows_by_name(out):
    """Table rows keyed by layer name: (#, type, shape, params, flops) as printed."""
    lines = out.splitlines()
    start = lines.index(next(line for line in lines if line.lstrip().startswith('#  Layer')))
    rows = {}
    for line in lines[start + 2:]:
        if line.startswith('-'):
            break
        cells = line.split()
        rows[cells[1]] = cells
    return rows


def test_caffenet_summary(shared, capsys):
    status, out, err = run(capsys, 'info', os.path.join(shared, 'nets',
                                                        'bvlc_reference_caffenet',
                                                        'deploy.prototxt'))
    assert status == 0
    assert err == ''   # the net's construction log stays quiet unless asked for
    assert out.splitlines()[0] == 'CaffeNet (TEST phase, 24 layers)'
    rows = rows_by_name(out)
    assert list(rows)[:3] == ['data', 'conv1', 'relu1'] and len(rows) == 24
    assert rows['conv1'][2:] == ['Convolution', '10x96x55x55', '34,944', '2.11', 'G']
    assert rows['pool5'][2:4] == ['Pooling', '10x256x6x6']
    assert rows['fc6'][2:5] == ['InnerProduct', '10x4096', '37,752,832']
    assert rows['drop6'][-1] == '-'
    assert 'Parameters: 60,965,224 (61.0 M; 244 MB as float32)' in out
    assert 'Forward:    14.5 GFLOP per pass of batch 10 (1.45 GFLOP per item)' in out
    # Columns line up: every row's parameter count ends where the header's "Params" ends.
    lines = out.splitlines()
    header = next(line for line in lines if line.lstrip().startswith('#  Layer'))
    end = header.index('Params') + len('Params')
    table = [line for line in lines if line[:4].strip().isdigit()]
    assert len(table) == 24
    assert all(line[:end].split()[-1] == line.split()[4] and line[end] == ' ' for line in table)


def test_lenet_flops_by_hand(shared):
    net = Net(os.path.join(shared, 'nets', 'lenet.prototxt'), caffe_pb2.TEST)
    rows, totals = summarize(net)
    flops = {row['name']: row['flops'] for row in rows}
    n = 64
    expected = {
        'data': 0,
        'conv1': 2 * n * 20 * 24 * 24 * (1 * 5 * 5) + n * 20 * 24 * 24,
        'pool1': n * 20 * 12 * 12 * 4,
        'conv2': 2 * n * 50 * 8 * 8 * (20 * 5 * 5) + n * 50 * 8 * 8,
        'pool2': n * 50 * 4 * 4 * 4,
        'ip1': 2 * n * 800 * 500 + n * 500,
        'relu1': n * 500,
        'ip2': 2 * n * 500 * 10 + n * 10,
        'prob': 5 * n * 10,
    }
    assert flops == expected
    assert totals['params'] == 20 * 25 + 20 + 50 * 20 * 25 + 50 + 800 * 500 + 500 + 5010
    assert totals['flops'] == sum(expected.values())
    assert totals['batch'] == 64 and totals['unknown'] == [] and totals['hidden_splits'] == 0


def test_grouped_conv_deconv_and_global_pooling_flops():
    from cct.io import parse_text
    net = Net(parse_text('''
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 4 dim: 6 dim: 6 } } }
        layer { name: "conv" type: "Convolution" bottom: "x" top: "c"
                convolution_param { num_output: 6 kernel_size: 3 group: 2 bias_term: false } }
        layer { name: "up" type: "Deconvolution" bottom: "c" top: "u"
                convolution_param { num_output: 2 kernel_size: 2 stride: 2 } }
        layer { name: "gap" type: "Pooling" bottom: "u" top: "g"
                pooling_param { pool: AVE global_pooling: true } }''',
                         caffe_pb2.NetParameter()))
    layers = dict(zip(net.layer_names, zip(net.layers, net.bottom_vecs, net.top_vecs)))
    assert forward_flops(*layers['conv']) == 2 * 2 * 6 * 4 * 4 * (2 * 3 * 3)
    # Deconvolution lowers its output: one GEMM column per *input* position.
    assert forward_flops(*layers['up']) == 2 * 2 * 4 * 4 * 6 * (2 * 2 * 2) + 2 * 2 * 8 * 8
    assert forward_flops(*layers['gap']) == 2 * 2 * 8 * 8


def test_split_layers_hidden_and_counted(shared, capsys):
    status, out, _ = run(capsys, 'info', os.path.join(shared, 'nets', 'bvlc_googlenet',
                                                      'deploy.prototxt'))
    assert status == 0
    assert '(9 automatically inserted Split layers not shown)' in out
    assert '_split' not in out
    assert 'Parameters: 6,998,552 (7.00 M; 28.0 MB as float32)' in out
    assert rows_by_name(out)['pool1/3x3_s2'][3] == '10x64x56x56'


def test_weights_report_and_phase_level_stage(shared, capsys, tmp_path):
    net = os.path.join(shared, 'nets', 'lenet.prototxt')
    weights = os.path.join(shared, 'models', 'lenet_iter_10000.caffemodel')
    status, out, _ = run(capsys, 'info', net, '--weights', weights)
    assert status == 0
    assert 'Weights:    4 of 4 layers with parameters loaded from %s' % weights in out
    model = read_net_binary(weights)
    keep = [layer for layer in model.layer if layer.name in ('conv1', 'ip2')]
    del model.layer[:]
    model.layer.extend(keep)
    model.layer.add(name='elsewhere').blobs.add().shape.dim.append(0)
    partial = str(tmp_path / 'partial.caffemodel')
    write_binary(model, partial)
    _, out, _ = run(capsys, 'info', net, '--weights', partial)
    assert out.splitlines()[-3:] == [
        'Weights:    2 of 4 layers with parameters loaded from %s' % partial,
        '            keeping their fillers: conv2, ip1',
        '            not in this net (ignored): elsewhere']
    h5 = str(tmp_path / 'lenet.caffemodel.h5')
    Net(net, caffe_pb2.TEST, weights=weights).save_hdf5(h5)
    status, out, _ = run(capsys, 'info', net, '--weights', h5)
    assert status == 0 and out.splitlines()[-1] == 'Weights:    loaded from %s' % h5
    staged = tmp_path / 'staged.prototxt'
    staged.write_text('''name: "staged"
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 3 dim: 4 } } }
        layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y"
                inner_product_param { num_output: 2 } include { phase: TRAIN } }
        layer { name: "deep" type: "ReLU" bottom: "x" top: "z" include { min_level: 2 } }
        layer { name: "staged" type: "ReLU" bottom: "x" top: "w" include { stage: "s" } }''')
    _, out, _ = run(capsys, 'info', str(staged))
    assert list(rows_by_name(out)) == ['in']
    _, out, _ = run(capsys, 'info', str(staged), '-phase', 'TRAIN', '--level=2', '--stage', 's')
    assert out.splitlines()[0] == 'staged (TRAIN phase, 5 layers)'   # with the Split of x
    assert list(rows_by_name(out)) == ['in', 'fc', 'deep', 'staged']
    # fc: 2 * 3 * 4 * 2 + 3 * 2 (bias); two ReLUs: 3 * 4 each
    assert 'Forward:    78 FLOP per pass of batch 3 (26 FLOP per item)' in out
    assert '(1 automatically inserted Split layer not shown)' in out


def test_human_units():
    assert [human(v) for v in (0, 999, 1000, 12345, 999999, 61e6, 1.45e9, 3e12)] == \
        ['0', '999', '1.00 k', '12.3 k', '1.00 M', '61.0 M', '1.45 G', '3.00 T']
    assert [human(v) for v in (999.5, 99950, 26.0, 4.625e6)] == ['1.00 k', '100 k', '26', '4.62 M']
    assert human(244e6, 'B') == '244 MB'


@pytest.mark.parametrize('argv, message', [
    (['missing.prototxt'], 'net file not found: missing.prototxt'),
    (['NET', '--phase', 'VAL'], 'phase must be "TRAIN" or "TEST"'),
    (['NET', '--weights', 'nothing.caffemodel'], 'weights file not found: nothing.caffemodel'),
])
def test_errors_are_one_line(shared, capsys, argv, message):
    argv = [os.path.join(shared, 'nets', 'lenet.prototxt') if a == 'NET' else a for a in argv]
    status, out, err = run(capsys, 'info', *argv)
    assert status == 1 and out == ''
    assert err.count('\n') == 1 and err.startswith('cct info: error: ') and message in err


def test_batch_of_a_net_fed_by_a_data_layer(tmp_path, capsys):
    """Without Input blobs the batch is axis 0 of the first data layer's first top."""
    path = tmp_path / 'dummy.prototxt'
    path.write_text('''name: "fed"
        layer { name: "data" type: "DummyData" top: "x" top: "label"
                dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
        layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y"
                inner_product_param { num_output: 2 } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "y" bottom: "label" top: "loss" }''')
    status, out, _ = run(capsys, 'info', str(path))
    assert status == 0
    assert rows_by_name(out)['data'][2:] == ['DummyData', '4x3,', '4', '0', '-']
    assert rows_by_name(out)['loss'][2:4] == ['SoftmaxWithLoss', 'scalar']
    # fc: 2 * 4 * 3 * 2 + 4 * 2 (bias) = 56; the loss: 5 per prediction = 40
    assert 'Forward:    96 FLOP per pass of batch 4 (24 FLOP per item)' in out
