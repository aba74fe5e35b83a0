"""Bad input, one case each: a malformed prototxt, an unknown layer type, a missing bottom, a truncated
caffemodel, a weight shape mismatch. Each is an exception of cct.errors with a message naming what is
wrong, and at the command line a single ``cct <action>: error: ...`` line with no traceback."""
import os

import pytest

from cct import cli
from cct.errors import NetError, ParseError, UnknownLayerError, WeightsError
from cct.net import Net
from cct.proto import caffe_pb2

GOOD_HEAD = '''name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 28 dim: 28 } } }
'''


@pytest.fixture
def files(tmp_path, shared):
    lenet = os.path.join(shared, 'nets', 'lenet.prototxt')
    weights = os.path.join(shared, 'models', 'lenet_iter_10000.caffemodel')
    with open(weights, 'rb') as f:
        data = f.read()
    truncated = tmp_path / 'truncated.caffemodel'
    truncated.write_bytes(data[:len(data) * 2 // 3])
    with open(lenet) as f:
        wider = f.read().replace('num_output: 500', 'num_output: 400')
    (tmp_path / 'wider.prototxt').write_text(wider)
    (tmp_path / 'malformed.prototxt').write_text(GOOD_HEAD + 'layer {\n  name: "ip"\n  typ: '
                                                 '"InnerProduct"\n}\n')
    (tmp_path / 'unknown.prototxt').write_text(GOOD_HEAD + 'layer { name: "conv1" type: '
                                               '"Convolutional" bottom: "data" top: "c" }\n')
    (tmp_path / 'missing.prototxt').write_text(GOOD_HEAD + 'layer { name: "relu" type: "ReLU" '
                                               'bottom: "dta" top: "r" }\n')
    return {'lenet': lenet, 'weights': weights, 'dir': tmp_path}


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
        ['LENET', '--weights', 'truncated.caffemodel'], ParseError,
        '%(dir)s/truncated.caffemodel: not a valid binary NetParameter (truncated or corrupt '
        'file?)'),
    'weight shape mismatch': (
        ['wider.prototxt', '--weights', 'WEIGHTS'], WeightsError,
        "%(weights)s: cannot copy param 0 weights from layer 'ip1'; shape mismatch. Source param "
        'shape is 500 800 (400000); target param shape is 400 800 (320000).'),
}


def resolve(argv, files):
    names = {'LENET': files['lenet'], 'WEIGHTS': files['weights']}
    return [names.get(a, a if a.startswith('-') else str(files['dir'] / a)) for a in argv]


@pytest.mark.parametrize('case', list(CASES))
def test_exception_names_what_is_wrong(files, case):
    argv, error, message = CASES[case]
    argv = resolve(argv, files)
    with pytest.raises(error) as raised:
        net = Net(argv[0], caffe_pb2.TEST)
        net.copy_from(argv[2])
    text = str(raised.value)
    assert text.startswith(message % {'dir': files['dir'], 'weights': files['weights']})
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
                               message % {'dir': files['dir'], 'weights': files['weights']})
