"""Training Caffe's LeNet example end to end with `cct train`: Caffe's own lenet_solver.prototxt and
lenet_train_test.prototxt on real MNIST digits (the first 8,000 test-set images to train, the last
2,000 to test) reach >= 97% test accuracy within 1,000 iterations, and the log reads as Caffe's:
parse_log.py's regexes and rules, and parse_log.sh's whitespace fields, both work on it."""
import gzip
import os
import re

import numpy as np
import pytest

from cct import cli
from cct import io as cct_io
from cct.proto import caffe_pb2
from cct.tools import parse_log

GLOG_PREFIX = re.compile(r'^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [^ ]+:\d+\] ')


def read_idx(path):
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    dims = np.frombuffer(raw, '>u4', count=raw[3], offset=4)
    return raw[:4 + 4 * raw[3]], np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(
        tuple(int(d) for d in dims))


def write_idx_subset(header, array, path):
    """An uncompressed idx file holding ``array`` (MNIST's format, as convert_mnist_data reads)."""
    dims = np.array(array.shape, '>u4').tobytes()
    with open(path, 'wb') as f:
        f.write(header[:4] + dims + np.ascontiguousarray(array).tobytes())


def make_lmdbs(shared, tmp_path):
    """mnist_train_lmdb (test images 0..7999) and mnist_test_lmdb (8000..9999), written by
    `cct convert_mnist` from idx files of those images."""
    mnist = os.path.join(shared, 'data', 'mnist')
    image_header, images = read_idx(os.path.join(mnist, 't10k-images-idx3-ubyte.gz'))
    label_header, labels = read_idx(os.path.join(mnist, 't10k-labels-idx1-ubyte.gz'))
    sources = {}
    for name, rows in (('train', slice(0, 8000)), ('test', slice(8000, 10000))):
        images_path = str(tmp_path / ('%s-images-idx3-ubyte' % name))
        labels_path = str(tmp_path / ('%s-labels-idx1-ubyte' % name))
        write_idx_subset(image_header, images[rows], images_path)
        write_idx_subset(label_header, labels[rows], labels_path)
        sources[name] = str(tmp_path / ('mnist_%s_lmdb' % name))
        assert cli.main(['convert_mnist', images_path, labels_path, sources[name],
                         '--backend=lmdb']) == 0
    return sources


def lenet_solver_file(shared, tmp_path, sources):
    """Caffe's LeNet solver and net, pointed at our LMDBs: 20 test batches of 100 = the 2,000
    held-out digits, 1,000 iterations, snapshots in tmp_path."""
    net = cct_io.read_net_text(os.path.join(shared, 'nets', 'lenet_train_test.prototxt'))
    for layer in net.layer:
        if layer.type == 'Data':
            phase = layer.include[0].phase
            layer.data_param.source = sources['train' if phase == caffe_pb2.TRAIN else 'test']
    net_path = str(tmp_path / 'lenet_train_test.prototxt')
    cct_io.write_text(net, net_path)
    solver = cct_io.read_text(os.path.join(shared, 'nets', 'lenet_solver.prototxt'),
                              caffe_pb2.SolverParameter)
    solver.net = net_path
    solver.test_iter[0] = 20
    solver.max_iter = 1000
    solver.random_seed = 1701
    # Caffe's example solver asks for solver_mode: GPU, which picks an accelerator; this test
    # measures training on the CPU.
    solver.solver_mode = caffe_pb2.SolverParameter.CPU
    solver.snapshot_prefix = str(tmp_path / 'lenet')
    solver_path = str(tmp_path / 'lenet_solver.prototxt')
    cct_io.write_text(solver, solver_path)
    return solver_path


def parse_log_sh_fields(lines):
    """What Caffe's parse_log.sh extracts: field 11 of the 'Test net output #0/#1' lines and
    field 9 of the ', lr = ' lines (awk's whitespace split)."""
    accuracy = [float(line.split()[10]) for line in lines if 'Test net output #0' in line]
    loss = [float(line.split()[10]) for line in lines if 'Test net output #1' in line]
    rates = [float(line.split()[8]) for line in lines if ', lr = ' in line]
    return accuracy, loss, rates


def test_lenet_reaches_97_percent_and_its_log_parses_like_caffes(shared, tmp_path, capsys):
    sources = make_lmdbs(shared, tmp_path)
    solver_path = lenet_solver_file(shared, tmp_path, sources)
    capsys.readouterr()
    assert cli.main(['train', '--solver=' + solver_path]) == 0
    log = capsys.readouterr().err
    log_path = tmp_path / 'lenet.log'
    log_path.write_text(log)
    lines = log.splitlines()

    # Caffe's scripts read every line after the first 'Iteration N' through its glog prefix.
    first = next(i for i, line in enumerate(lines) if re.search(r'Iteration \d+', line))
    assert all(GLOG_PREFIX.match(line) for line in lines[first:])
    assert any(line.endswith('] Solving LeNet') for line in lines[:first])

    train_rows, test_rows = parse_log.parse_log(str(log_path))
    assert [row['NumIters'] for row in train_rows] == list(range(0, 1000, 100))
    assert list(train_rows[0]) == ['NumIters', 'Seconds', 'LearningRate', 'loss']
    assert [row['NumIters'] for row in test_rows] == [0, 500, 1000]
    assert list(test_rows[0]) == ['NumIters', 'Seconds', 'LearningRate', 'accuracy', 'loss']
    assert train_rows[-1]['loss'] < train_rows[0]['loss'] / 10
    # As in Caffe's logs, a train row carries the last 'lr = ' printed before its outputs: the
    # rate of the previous display iteration.
    assert train_rows[5]['LearningRate'] == pytest.approx(0.01 * (1 + 0.0001 * 400) ** -0.75,
                                                          rel=1e-5)
    assert test_rows[-1]['accuracy'] >= 0.97, test_rows
    assert all(b['Seconds'] >= a['Seconds'] for a, b in zip(train_rows, train_rows[1:]))

    accuracy, loss, rates = parse_log_sh_fields(lines)
    assert accuracy == [row['accuracy'] for row in test_rows]
    assert loss == [row['loss'] for row in test_rows]
    assert rates == pytest.approx([0.01 * (1 + 0.0001 * it) ** -0.75 for it in range(0, 1000, 100)],
                                  rel=1e-5)
    assert rates[:-1] == [row['LearningRate'] for row in train_rows[1:]]

    messages = [line.split('] ', 1)[1] for line in lines[first:]]
    assert messages[-1] == 'Optimization Done.'
    assert 'Snapshotting to binary proto file %s_iter_1000.caffemodel' % (tmp_path / 'lenet') \
        in messages
    assert any(m.startswith('Iteration 1000, loss = ') for m in messages)
