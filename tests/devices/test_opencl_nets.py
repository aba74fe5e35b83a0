"""Whole nets on each accelerator (PoCL's OpenCL in CI; CUDA where a GPU is): Caffe's LeNet weights
score the MNIST test set as Caffe does, LeNet trained with each of the six solvers tracks the CPU
run, a pycaffe-style script gives the CPU's numbers, and the command line's --gpu picks the device
and says which."""
import os

import numpy as np
import pytest

import cct as caffe
from cct import cli, devices, runtime
from cct.errors import DeviceError
from cct.io import parse_text, read_net_text, write_text
from cct.net import Net
from cct.proto import caffe_pb2
from cct.testing import lenet_train_input, step_on_mnist
from cct.solver import solver_class
from opencl_support import assert_close
from test_lenet_golden import lenet_score, read_idx

# AdaGrad's and RMSProp's delta is 1e-4, not Caffe's default 1e-8: with 1e-8 a weight whose
# gradient is about 0 steps by +-rate with a sign that is rounding noise, so any two summation
# orders (Caffe's GPU and CPU runs too) part ways within 40 steps (measured: 2-5% apart at step 40).
SOLVERS = {
    'SGD': dict(base_lr=0.01, momentum=0.9),
    'Nesterov': dict(base_lr=0.01, momentum=0.95),
    'AdaGrad': dict(base_lr=0.01, delta=1e-4),
    'RMSProp': dict(base_lr=0.001, rms_decay=0.98, delta=1e-4),
    'AdaDelta': dict(base_lr=1.0, momentum=0.95, delta=1e-6),
    'Adam': dict(base_lr=0.001, momentum=0.9, momentum2=0.999),
}
BATCH = 16


@pytest.fixture(scope='module')
def mnist(shared):
    images = read_idx(os.path.join(shared, 'data', 'mnist', 't10k-images-idx3-ubyte.gz'))
    labels = read_idx(os.path.join(shared, 'data', 'mnist', 't10k-labels-idx1-ubyte.gz'))
    return images, labels


def accelerator_ordinal(device):
    return devices.device_names()[1:].index(device.name)


def test_lenet_caffemodel_scores_like_caffe_on_opencl(shared, mnist, accel):
    images, labels = mnist
    net = Net(os.path.join(shared, 'nets', 'lenet.prototxt'), caffe_pb2.TEST,
              weights=os.path.join(shared, 'models', 'lenet_iter_10000.caffemodel'), device=accel)
    accuracy, loss = lenet_score(net, images, labels, 500)
    assert accuracy == pytest.approx(0.9914, abs=1e-4)
    assert loss == pytest.approx(0.02727, abs=1e-4)


def train(param, solver_type, device, mnist, steps):
    solver_param = caffe_pb2.SolverParameter(type=solver_type, lr_policy='inv', gamma=1e-4,
                                             power=0.75, weight_decay=5e-4, display=0,
                                             random_seed=1701, snapshot_after_train=False,
                                             **SOLVERS[solver_type])
    solver_param.train_net_param.CopyFrom(param)
    runtime.use_device(device)
    try:
        solver = solver_class(solver_type)(solver_param)
    finally:
        runtime.set_mode_cpu()
    return step_on_mnist(solver, mnist, steps, BATCH)


@pytest.mark.parametrize('solver_type', sorted(SOLVERS))
def test_lenet_training_tracks_the_cpu_on_opencl(shared, mnist, accel, solver_type):
    """40 steps: the loss within 1e-4 (relative) of the CPU's for 10 steps and 1e-3 after (float32
    sums in another order drift apart slowly, as Caffe's GPU and CPU runs do)."""
    param = lenet_train_input(shared, BATCH)
    cpu_losses = train(param, solver_type, 'cpu', mnist, 40)
    device_losses = train(param, solver_type, accel, mnist, 40)
    assert cpu_losses[-1] < cpu_losses[0]
    np.testing.assert_allclose(device_losses[:10], cpu_losses[:10], rtol=1e-4)
    np.testing.assert_allclose(device_losses, cpu_losses, rtol=1e-3)


SCRIPT_NET = '''
name: "script"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 8 dim: 3 dim: 10 dim: 10 } shape { dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 6 kernel_size: 3 weight_filler { type: "xavier" } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "relu" type: "ReLU" bottom: "pool" top: "pool" }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
'''


def pycaffe_script(tmp_path, gpu):
    """What a pycaffe user writes: mode, net surgery on .data, forward, backward, a solver."""
    net_path = str(tmp_path / 'net.prototxt')
    write_text(parse_text(SCRIPT_NET, caffe_pb2.NetParameter()), net_path)
    solver_path = str(tmp_path / 'solver.prototxt')
    with open(solver_path, 'w') as f:
        f.write('net: "%s" base_lr: 0.1 momentum: 0.9 lr_policy: "fixed" random_seed: 3 '
                'display: 0 snapshot_after_train: false' % net_path)
    if gpu is None:
        caffe.set_mode_cpu()
    else:
        caffe.set_device(gpu)
        caffe.set_mode_gpu()
    try:
        caffe.set_random_seed(11)
        net = caffe.Net(net_path, caffe.TRAIN)
        gen = np.random.default_rng(4)
        net.blobs['data'].data[...] = gen.standard_normal((8, 3, 10, 10))
        net.blobs['label'].data[...] = gen.integers(0, 4, 8)
        net.params['conv'][0].data[:, 0] *= 0.5               # net surgery in place
        net.params['ip'][1].data[...] = np.arange(4) * 0.1
        out = {'loss': float(net.forward()['loss'])}
        grads = net.backward(diffs=['data'])
        out['data_diff'] = grads['data'].copy()
        out['conv_diff'] = net.params['conv'][0].diff.copy()
        net.save(str(tmp_path / ('saved_%s.caffemodel' % gpu)))
        solver = caffe.SGDSolver(solver_path)
        solver.net.copy_from(str(tmp_path / ('saved_%s.caffemodel' % gpu)))
        solver.net.blobs['data'].data[...] = net.blobs['data'].data
        solver.net.blobs['label'].data[...] = net.blobs['label'].data
        solver.step(3)
        out['trained_ip'] = solver.net.params['ip'][0].data.copy()
        out['device'] = str(solver.net.device)
        return out
    finally:
        caffe.set_mode_cpu()


def test_a_pycaffe_script_gives_the_cpus_numbers_on_opencl(tmp_path, accel):
    cpu = pycaffe_script(tmp_path, None)
    device = pycaffe_script(tmp_path, accelerator_ordinal(accel))
    assert cpu['device'] == 'cpu' and device['device'] == accel.name
    assert device['loss'] == pytest.approx(cpu['loss'], rel=1e-4)
    for key in ('data_diff', 'conv_diff', 'trained_ip'):
        assert_close(device[key], cpu[key], np.float32)
    saved = [read_net_binary_weights(tmp_path / ('saved_%s.caffemodel' % g))
             for g in (None, accelerator_ordinal(accel))]
    for mine, theirs in zip(*saved):
        assert_close(theirs, mine, np.float32)


def read_net_binary_weights(path):
    from cct.io import read_net_binary
    return [np.asarray(blob.data) for layer in read_net_binary(str(path)).layer
            for blob in layer.blobs]


def run_cli(capsys, *argv):
    status = cli.main(list(argv))
    err = capsys.readouterr().err
    return status, err, [line.split('] ', 1)[1] for line in err.splitlines() if '] ' in line]


def test_the_command_line_trains_and_times_on_the_gpu_it_is_given(tmp_path, capsys, accel):
    ordinal = accelerator_ordinal(accel)
    net_path = str(tmp_path / 'net.prototxt')
    write_text(parse_text(SCRIPT_NET, caffe_pb2.NetParameter()), net_path)
    solver_path = str(tmp_path / 'solver.prototxt')
    with open(solver_path, 'w') as f:
        f.write('net: "%s" base_lr: 0.1 lr_policy: "fixed" max_iter: 2 display: 1 '
                'snapshot_after_train: false solver_mode: GPU device_id: %d'
                % (net_path, ordinal))
    try:
        status, err, messages = run_cli(capsys, 'train', '--solver=' + solver_path)
        assert status == 0, err
        assert 'Using GPUs %d' % ordinal in messages
        assert 'GPU %d: %s (%s)' % (ordinal, accel.describe()['name'], accel.name) in messages
        status, err, messages = run_cli(capsys, 'time', '--model=' + net_path, '--gpu',
                                        str(ordinal), '--iterations', '2')
        assert status == 0, err
        assert any(m.startswith('Average Forward-Backward:') for m in messages)
        status, err, messages = run_cli(capsys, 'device_query')
        assert status == 0
        assert 'Device: %s' % accel.name in messages
        assert 'Name:                          %s' % accel.describe()['name'] in messages
        assert any(m.startswith('Compute units:') for m in messages)
    finally:
        runtime.set_mode_cpu()


def test_an_allocation_larger_than_the_device_names_the_layer(accel):
    memory = accel.describe()['memory']
    side = int((memory / 4) ** 0.5) + 1024
    text = ('layer { name: "huge" type: "Input" top: "x" input_param { shape { dim: %d dim: %d '
            '} } }' % (side, side))
    with pytest.raises(DeviceError, match=r"Layer 'huge' \(type Input\).*bytes"):
        Net(parse_text(text, caffe_pb2.NetParameter()), device=accel)


def test_cct_test_scores_caffes_lmdb_on_opencl_as_on_the_cpu(shared, tmp_path, capsys, accel):
    """The Data layer reads on the host and hands each batch to the device; Accuracy counts on
    the host; the scores are the CPU's."""
    param = read_net_text(os.path.join(shared, 'nets', 'lenet_train_test.prototxt'))
    for layer in param.layer:
        if layer.type == 'Data':
            layer.data_param.source = os.path.join(shared, 'data', 'mnist_test_lmdb_by_caffe')
    model = str(tmp_path / 'lenet_train_test.prototxt')
    write_text(param, model)
    weights = os.path.join(shared, 'models', 'lenet_iter_10000.caffemodel')
    scores = []
    for gpu in ([], ['--gpu', str(accelerator_ordinal(accel))]):
        try:
            status, err, messages = run_cli(capsys, 'test', '--model', model, '--weights',
                                            weights, '--iterations', '3', *gpu)
        finally:
            runtime.set_mode_cpu()
        assert status == 0, err
        assert ('Using GPUs %d' % accelerator_ordinal(accel) in messages) == bool(gpu)
        scores.append([m for m in messages if m.startswith(('accuracy = ', 'loss = '))])
    assert len(scores[0]) == 2
    for cpu_line, device_line in zip(*scores):
        name, cpu_value = cpu_line.split(' = ', 1)
        assert device_line.startswith(name + ' = ')
        assert float(device_line.split(' = ')[1].split()[0]) == pytest.approx(
            float(cpu_value.split()[0]), rel=1e-4)


SIAMESE = '''force_backward: true
layer { name: "pairs" type: "Input" top: "a" top: "b" top: "same"
        input_param { shape { dim: 8 dim: 5 } shape { dim: 8 dim: 5 } shape { dim: 8 } } }
layer { name: "embed_a" type: "InnerProduct" bottom: "a" top: "ea"
        param { name: "w" } param { name: "bias" }
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "embed_b" type: "InnerProduct" bottom: "b" top: "eb"
        param { name: "w" } param { name: "bias" }
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "siamese" type: "ContrastiveLoss" bottom: "ea" bottom: "eb" bottom: "same"
        top: "loss" contrastive_loss_param { margin: 2 } }
'''


def test_a_siamese_net_trains_on_opencl_as_on_the_cpu(accel):
    """ContrastiveLoss on the device behind a weight-shared pair: the CPU's loss and gradients."""
    gen = np.random.default_rng(4)
    inputs = {'a': gen.standard_normal((8, 5)), 'b': gen.standard_normal((8, 5)),
              'same': gen.integers(0, 2, 8).astype(np.float64)}
    results, weights = [], None
    for device in ('cpu', accel):
        net = Net(parse_text(SIAMESE, caffe_pb2.NetParameter()), caffe_pb2.TRAIN, device=device)
        if weights is None:
            weights = [blob.data.copy() for blob in net.params['embed_a']]
        for blob, value in zip(net.params['embed_a'], weights):
            blob.data[...] = value      # shared with embed_b
        for name, value in inputs.items():
            net.blobs[name].data[...] = value
        loss = net.forward_backward()
        results.append((loss, net.params['embed_a'][0].diff.copy(), net.blobs['a'].diff.copy()))
    (cpu_loss, *cpu_grads), (device_loss, *device_grads) = results
    assert device_loss == pytest.approx(cpu_loss, rel=1e-4) and cpu_loss > 0
    for mine, theirs in zip(cpu_grads, device_grads):
        assert np.abs(mine).max() > 0
        assert_close(theirs, mine, np.float32)


def test_a_layer_opencl_cannot_run_is_refused_by_name(accel, monkeypatch):
    """Every catalogue layer runs on OpenCL; a device lacking a primitive one needs (here dot_rows,
    as a backend that has not written it yet would) refuses it by name when the net is built."""
    supports = type(accel).supports
    monkeypatch.setattr(accel, 'supports', lambda name, op=None: name != 'dot_rows' and
                        supports(accel, name, op))
    with pytest.raises(DeviceError, match=r"Layer 'siamese' \(type ContrastiveLoss\) is not "
                                          r'supported on device %s \(it needs the dot_rows'
                                          % accel.name):
        Net(parse_text(SIAMESE, caffe_pb2.NetParameter()), device=accel)
    Net(parse_text(SIAMESE, caffe_pb2.NetParameter()), device='cpu')
