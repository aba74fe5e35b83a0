"""``cct upgrade IN OUT`` (cct/tools/upgrade.py): Caffe's upgrade_net_proto_text/_binary and
upgrade_solver_proto_text in one action; text or binary output by extension; Caffe's log lines and
exit status; one-line errors."""
import os

import pytest

from cct import cli
from cct.io import read_binary, read_net_text, read_text, write_binary
from cct.net import Net
from cct.proto import caffe_pb2
from cct.testing import to_v1_layout


def run(capsys, *argv):
    status = cli.main(['upgrade'] + [str(a) for a in argv])
    err = capsys.readouterr().err
    return status, [line.split('] ', 1)[1] for line in err.splitlines() if '] ' in line], err


def test_v1_prototxt_to_v2_text(shared, tmp_path, capsys):
    source = os.path.join(shared, 'nets', 'zoo', 'v1', 'lenet_train_test_v1.prototxt')
    target = tmp_path / 'lenet_v2.prototxt'
    status, log, _ = run(capsys, source, target)
    assert status == 0
    assert 'Attempting to upgrade input file specified using deprecated V1LayerParameter: %s' \
        % source in log
    assert log[-1] == 'Wrote upgraded NetParameter text proto to %s' % target
    text = target.read_text()
    assert 'layer {' in text and 'layers {' not in text and 'type: "Convolution"' in text
    assert read_text(str(target), caffe_pb2.NetParameter) == \
        read_net_text(os.path.join(shared, 'nets', 'lenet_train_test.prototxt'))


def test_v1_caffemodel_to_v2_binary(shared, tmp_path, capsys):
    weights = os.path.join(shared, 'models', 'lenet_iter_10000.caffemodel')
    old = tmp_path / 'old.caffemodel'
    write_binary(to_v1_layout(read_binary(weights, caffe_pb2.NetParameter)), str(old))
    target = tmp_path / 'new.caffemodel'
    status, log, _ = run(capsys, old, target)
    assert status == 0
    assert log[-1] == 'Wrote upgraded NetParameter binary proto to %s' % target
    upgraded = read_binary(str(target), caffe_pb2.NetParameter)
    assert not len(upgraded.layers) and len(upgraded.layer) == 9
    net = Net(os.path.join(shared, 'nets', 'lenet.prototxt'), caffe_pb2.TEST, weights=str(target))
    reference = Net(os.path.join(shared, 'nets', 'lenet.prototxt'), caffe_pb2.TEST,
                    weights=weights)
    for name in ('conv1', 'conv2', 'ip1', 'ip2'):
        for ours, theirs in zip(net.params[name], reference.params[name]):
            assert (ours.data == theirs.data).all()


def test_text_in_binary_out_and_back(shared, tmp_path, capsys):
    source = os.path.join(shared, 'nets', 'zoo', 'v1', 'cifar10_quick_train_test_v1.prototxt')
    status, _, _ = run(capsys, source, tmp_path / 'net.binaryproto')
    assert status == 0
    status, log, _ = run(capsys, tmp_path / 'net.binaryproto', tmp_path / 'net.prototxt')
    assert status == 0
    assert log[0] == 'File already in latest proto format: %s' % (tmp_path / 'net.binaryproto')
    assert read_text(str(tmp_path / 'net.prototxt'), caffe_pb2.NetParameter) == \
        read_net_text(os.path.join(shared, 'nets', 'cifar10_quick_train_test.prototxt'))


def test_solver_type_upgrade(tmp_path, capsys):
    source = tmp_path / 'old_solver.prototxt'
    source.write_text('net: "train_val.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\n'
                      'solver_type: NESTEROV\nmomentum: 0.9\n')
    target = tmp_path / 'new_solver.prototxt'
    status, log, _ = run(capsys, source, target)
    assert status == 0
    assert log[-1] == 'Wrote upgraded SolverParameter text proto to %s' % target
    solver = read_text(str(target), caffe_pb2.SolverParameter)
    assert solver.type == 'Nesterov' and not solver.HasField('solver_type')
    # As upgrade_solver_proto_text, no snapshot_prefix is invented.
    assert not solver.HasField('snapshot_prefix')


def test_problems_give_status_1_and_still_write(tmp_path, capsys):
    source = tmp_path / 'v0.prototxt'
    source.write_text('input: "x" layers { layer { name: "r" type: "relu" num_output: 3 } '
                      'bottom: "x" top: "y" }')
    status, log, _ = run(capsys, source, tmp_path / 'out.prototxt')
    assert status == 1
    assert 'Unknown parameter num_output for layer type relu' in log
    assert 'Encountered error(s) while upgrading prototxt; see details above.' in log
    assert 'type: "ReLU"' in (tmp_path / 'out.prototxt').read_text()


@pytest.mark.parametrize('content, message', [
    ('layer {\n  name: "a"\n  bogus: 1\n}\n',
     'Failed to parse input text file as NetParameter: %(path)s:3:3: Message type '
     '"caffe.LayerParameter" has no field named "bogus".'),
    ('base_lr: 0.1\nmax_iter: 10\nlr_polcy: "fixed"\n',
     'Failed to parse input text file as SolverParameter: %(path)s:3:1: Message type '
     '"caffe.SolverParameter" has no field named "lr_polcy".'),
    ('layer { name: "a" } layers { name: "b" }',
     "Refusing to upgrade inconsistent NetParameter input"),
])
def test_bad_input_is_one_line(tmp_path, capsys, content, message):
    source = tmp_path / 'bad.prototxt'
    source.write_text(content)
    status, _, err = run(capsys, source, tmp_path / 'out.prototxt')
    assert status == 1
    assert err.splitlines()[-1].startswith('cct upgrade: error: ')
    assert message % {'path': source} in err.splitlines()[-1]
    assert 'Traceback' not in err and not (tmp_path / 'out.prototxt').exists()


def test_missing_input_and_garbage_binary(tmp_path, capsys):
    status, _, err = run(capsys, tmp_path / 'nothing.prototxt', tmp_path / 'out.prototxt')
    assert status == 1 and err.strip() == \
        'cct upgrade: error: input file not found: %s' % (tmp_path / 'nothing.prototxt')
    garbage = tmp_path / 'garbage.caffemodel'
    garbage.write_bytes(b'\x0a\xff\xff\xff')
    status, _, err = run(capsys, garbage, tmp_path / 'out.caffemodel')
    assert status == 1 and err.strip().startswith(
        'cct upgrade: error: %s: not a valid binary NetParameter' % garbage)
