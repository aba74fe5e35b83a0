"""Bad input, one case each: a malformed prototxt, an unknown layer type, a missing bottom, a truncated
caffemodel, a weight shape mismatch. Each is an exception of cct.errors with a message naming what is
wrong, and at the command line a single ``cct <action>: error: ...`` line with no traceback. The
caffemodel cases run on weights cct saves (always) and on the file Caffe wrote (with ../shared)."""
import os
import subprocess
import sys

import pytest

from cct import cli
from cct.errors import NetError, ParseError, UnknownLayerError, WeightsError
from cct.net import Net
from cct.proto import caffe_pb2

GOOD_HEAD = '''name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 28 dim: 28 } } }
'''


BUILT_NET = GOOD_HEAD + (
    'layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" '
    'inner_product_param { num_output: 50 weight_filler { type: "xavier" } } }\n'
    'layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }\n')


@pytest.fixture(params=['weights cct saved', 'weights Caffe wrote'])
def files(request, tmp_path):
    """The bad files, made from either a net whose weights cct saves here (no ../shared needed) or
    Caffe's LeNet and the caffemodel real Caffe wrote."""
    if request.param == 'weights cct saved':
        net_path = tmp_path / 'built.prototxt'
        net_path.write_text(BUILT_NET)
        weights = str(tmp_path / 'built.caffemodel')
        Net(str(net_path), caffe_pb2.TEST).save(weights)
        net, old, new = str(net_path), 'num_output: 50', 'num_output: 40'
        shapes = {'source': '50 784 (39200)', 'target': '40 784 (31360)'}
    else:
        shared = request.getfixturevalue('shared')
        net = os.path.join(shared, 'nets', 'lenet.prototxt')
        weights = os.path.join(shared, 'models', 'lenet_iter_10000.caffemodel')
        old, new = 'num_output: 500', 'num_output: 400'
        shapes = {'source': '500 800 (400000)', 'target': '400 800 (320000)'}
    with open(weights, 'rb') as f:
        data = f.read()
    truncated = tmp_path / 'truncated.caffemodel'
    truncated.write_bytes(data[:len(data) * 2 // 3])
    with open(net) as f:
        text = f.read()
    assert old in text
    (tmp_path / 'wider.prototxt').write_text(text.replace(old, new))
    (tmp_path / 'malformed.prototxt').write_text(GOOD_HEAD + 'layer {\n  name: "ip"\n  typ: '
                                                 '"InnerProduct"\n}\n')
    (tmp_path / 'unknown.prototxt').write_text(GOOD_HEAD + 'layer { name: "conv1" type: '
                                               '"Convolutional" bottom: "data" top: "c" }\n')
    (tmp_path / 'missing.prototxt').write_text(GOOD_HEAD + 'layer { name: "relu" type: "ReLU" '
                                               'bottom: "dta" top: "r" }\n')
    return dict(shapes, net=net, weights=weights, dir=tmp_path)


CASES = {
    'malformed prototxt': (
        ['malformed.prototxt'], ParseError,
        '%(dir)s/malformed.prototxt:5:3: Message type "caffe.LayerParameter" has no field named '
        '"typ".'),
    'unknown layer type': (
        ['unknown.prototxt'], UnknownLayerError,
        "Unknown layer type: Convolutional (layer 'conv1'); known types: AbsVal, Accuracy, "),
    'missing bottom': (
        ['missing.prototxt'], NetError,
        "Unknown bottom blob 'dta' (layer 'relu', bottom index 0)"),
    'truncated caffemodel': (
        ['NET', '--weights', 'truncated.caffemodel'], ParseError,
        '%(dir)s/truncated.caffemodel: not a valid binary NetParameter (truncated or corrupt '
        'file?)'),
    'weight shape mismatch': (
        ['wider.prototxt', '--weights', 'WEIGHTS'], WeightsError,
        "%(weights)s: cannot copy param 0 weights from layer 'ip1'; shape mismatch. Source param "
        'shape is %(source)s; target param shape is %(target)s.'),
}


def resolve(argv, files):
    names = {'NET': files['net'], 'WEIGHTS': files['weights']}
    return [names.get(a, a if a.startswith('-') else str(files['dir'] / a)) for a in argv]


@pytest.mark.parametrize('case', list(CASES))
def test_exception_names_what_is_wrong(files, case):
    argv, error, message = CASES[case]
    argv = resolve(argv, files)
    with pytest.raises(error) as raised:
        net = Net(argv[0], caffe_pb2.TEST)
        net.copy_from(argv[2])
    text = str(raised.value)
    assert text.startswith(message % files)
    assert '\n' not in text


@pytest.mark.parametrize('case', list(CASES))
def test_command_line_prints_one_line(files, case, capsys):
    argv, _, message = CASES[case]
    status = cli.main(['info'] + resolve(argv, files))
    captured = capsys.readouterr()
    assert status == 1 and captured.out == ''
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith('cct info: error: ' +
                               message % files)


def test_the_cct_command_itself_prints_one_line(files):
    """The console script as a user runs it, in its own process: one line, status 1."""
    argv, _, message = CASES['truncated caffemodel']
    done = subprocess.run([sys.executable, '-m', 'cct.cli', 'info'] + resolve(argv, files),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ''
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith('cct info: error: ' + message % files)
