"""Text and binary protobuf files (cct/io/protofiles.py): every prototxt of ../shared/nets parses (nets
upgraded, solvers with their type), syntax errors name file, line and column, and the failure modes
of reading files are ParseErrors with the path in the message."""
import glob
import os

import pytest

from cct.errors import ParseError
from cct.io import (parse_text, read_binary, read_net, read_net_text, read_solver_text,
                    upgrade_net, write_binary, write_text)
from cct.layers.base import layer_class
from cct.netgraph import filter_net
from cct.proto import caffe_pb2


def shared_prototxts(shared):
    paths = sorted(glob.glob(os.path.join(shared, 'nets', '**', '*.prototxt'), recursive=True))
    assert len(paths) == 44
    return paths


def test_every_shared_prototxt_parses(shared):
    nets = solvers = 0
    for path in shared_prototxts(shared):
        if 'solver' in os.path.basename(path):
            solver = read_solver_text(path)
            assert solver.type in ('SGD', 'Nesterov', 'AdaGrad', 'RMSProp', 'AdaDelta', 'Adam'), path
            assert solver.base_lr > 0, path
            solvers += 1
            continue
        net = read_net_text(path)
        assert len(net.layer) > 0 and not len(net.layers) and not len(net.input), path
        for layer in net.layer:
            layer_class(layer.type, layer.name)  # every type they use is registered
        nets += 1
    assert (nets, solvers) == (26, 18)


def test_consolidated_solver_carries_a_v1_net_that_upgrades(shared):
    """lenet_consolidated_solver.prototxt holds its net inline in V1 syntax; Caffe's solver reader
    leaves it as is, and the net upgrades to the V2 LeNet with its two test stages."""
    solver = read_solver_text(os.path.join(shared, 'nets', 'lenet_consolidated_solver.prototxt'))
    assert len(solver.net_param.layers) == 12 and not len(solver.net_param.layer)
    net = caffe_pb2.NetParameter()
    net.CopyFrom(solver.net_param)
    assert upgrade_net(net)
    assert [layer.type for layer in net.layer][:4] == ['Data', 'Data', 'Data', 'Convolution']
    assert [list(state.stage) for state in solver.test_state] == [['test-on-test-set'],
                                                                ['test-on-train-set']]
    net.state.CopyFrom(solver.test_state[1])
    net.state.phase = caffe_pb2.TEST
    data_layers = [layer for layer in filter_net(net).layer if layer.type == 'Data']
    assert [layer.include[0].stage for layer in data_layers] == [['test-on-train-set']]


@pytest.mark.parametrize('text, where, reason', [
    ('name: "x"\nlayer {\n  name: "a"\n  typo: 1\n}\n', ':4:3:', 'no field named "typo"'),
    ('layer {\n  name: "a"\n', ':2:9:', 'Expected "}"'),
    ('layer {\n  include { phase: TRIAN }\n}\n', ':2:20:', 'no value named TRIAN'),
    ('layer { name: "a" type: 3 }', ':1:25:', 'Expected string'),
])
def test_syntax_errors_name_file_line_and_column(tmp_path, text, where, reason):
    path = tmp_path / 'bad.prototxt'
    path.write_text(text)
    with pytest.raises(ParseError) as error:
        read_net_text(str(path))
    message = str(error.value)
    assert message.startswith(str(path) + where)
    assert reason in message
    assert '\n' not in message


def test_parse_text_names_its_source():
    with pytest.raises(ParseError, match=r'^<mine>:1:1: .*no field named "bogus"'):
        parse_text('bogus: 1', caffe_pb2.SolverParameter(), '<mine>')


def test_missing_file_directory_and_binary_given_as_text(tmp_path, shared):
    with pytest.raises(ParseError, match='net prototxt file not found: .*nothing.prototxt'):
        read_net_text(str(tmp_path / 'nothing.prototxt'))
    with pytest.raises(ParseError, match='is a directory'):
        read_net_text(str(tmp_path))
    weights = os.path.join(shared, 'models', 'lenet_iter_10000.caffemodel')
    with pytest.raises(ParseError, match='not a text prototxt'):
        read_net_text(weights)


def test_text_and_binary_round_trip(tmp_path, shared):
    net = read_net_text(os.path.join(shared, 'nets', 'bvlc_googlenet', 'deploy.prototxt'))
    write_text(net, str(tmp_path / 'copy.prototxt'))
    write_binary(net, str(tmp_path / 'copy.binaryproto'))
    assert read_net(str(tmp_path / 'copy.prototxt')) == net
    assert read_net(str(tmp_path / 'copy.binaryproto')) == net
    assert read_binary(str(tmp_path / 'copy.binaryproto'), caffe_pb2.NetParameter) == net
    assert sorted(os.listdir(tmp_path)) == ['copy.binaryproto', 'copy.prototxt']  # no temp files


def test_garbage_binary_is_a_parse_error(tmp_path):
    path = tmp_path / 'garbage.caffemodel'
    path.write_bytes(b'\xff' * 64)
    with pytest.raises(ParseError, match='garbage.caffemodel: not a valid binary NetParameter'):
        read_net(str(path))
