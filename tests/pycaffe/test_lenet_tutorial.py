"""Caffe's LeNet tutorial (examples/01-learning-lenet) end to end through the pycaffe API, on real
MNIST digits: NetSpec writes the train and test nets, SGDSolver trains, blobs and params are
inspected, and the test accuracy is computed by hand from ``net.blobs``; plus a Python loss layer
trained by SGDSolver."""
import numpy as np
import pytest

import cct as caffe
from cct import layers as L
from cct import params as P

SCALE = np.float32(0.00390625)
TRAIN_IMAGES = 8000  # the first 8000 test digits train, the last 2000 test
TRAIN_BATCH, TEST_BATCH = 64, 100
ITERATIONS = 250


def lenet(batch_size):
    """The tutorial's lenet(), fed from Python through Input layers instead of an LMDB."""
    n = caffe.NetSpec()
    n.data, n.label = L.Input(shape=[dict(dim=[batch_size, 1, 28, 28]), dict(dim=[batch_size])],
                              ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type='xavier'))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50, weight_filler=dict(type='xavier'))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type='xavier'))
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.score = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type='xavier'))
    n.loss = L.SoftmaxWithLoss(n.score, n.label)
    return n.to_proto()


SOLVER = """train_net: "{train}"
test_net: "{test}"
test_iter: 20
test_interval: 100000
test_initialization: false
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "inv"
gamma: 0.0001
power: 0.75
display: 50
max_iter: 10000
snapshot_prefix: "{prefix}"
random_seed: 1
"""


def test_lenet_tutorial(mnist, tmp_path):
    images, labels = mnist
    train_path, test_path = tmp_path / 'lenet_auto_train.prototxt', tmp_path / 'lenet_auto_test.prototxt'
    train_path.write_text(str(lenet(TRAIN_BATCH)))
    test_path.write_text(str(lenet(TEST_BATCH)))
    solver_path = tmp_path / 'lenet_auto_solver.prototxt'
    solver_path.write_text(SOLVER.format(train=train_path, test=test_path,
                                         prefix=tmp_path / 'lenet'))
    solver = caffe.SGDSolver(str(solver_path))

    assert [(k, v.data.shape) for k, v in solver.net.blobs.items()] == [
        ('data', (64, 1, 28, 28)), ('label', (64,)), ('conv1', (64, 20, 24, 24)),
        ('pool1', (64, 20, 12, 12)), ('conv2', (64, 50, 8, 8)), ('pool2', (64, 50, 4, 4)),
        ('fc1', (64, 500)), ('score', (64, 10)), ('loss', ())]
    assert [(k, v[0].data.shape) for k, v in solver.net.params.items()] == [
        ('conv1', (20, 1, 5, 5)), ('conv2', (50, 20, 5, 5)), ('fc1', (500, 800)),
        ('score', (10, 500))]
    test_net = solver.test_nets[0]
    test_net.share_with(solver.net)
    initial_conv1 = solver.net.params['conv1'][0].data.copy()

    def test_accuracy():
        correct = 0
        for start in range(TRAIN_IMAGES, len(labels), TEST_BATCH):
            test_net.blobs['data'].data[...] = images[start:start + TEST_BATCH, None] * SCALE
            test_net.forward(start='conv1')
            correct += int((test_net.blobs['score'].data.argmax(1) ==
                            labels[start:start + TEST_BATCH]).sum())
        return correct / (len(labels) - TRAIN_IMAGES)

    losses, accuracies = [], []
    for it in range(ITERATIONS):
        start = it * TRAIN_BATCH % TRAIN_IMAGES
        solver.net.blobs['data'].data[...] = images[start:start + TRAIN_BATCH, None] * SCALE
        solver.net.blobs['label'].data[...] = labels[start:start + TRAIN_BATCH]
        solver.step(1)
        losses.append(float(solver.net.blobs['loss'].data))
        if it % 100 == 0:
            accuracies.append(test_accuracy())
    accuracies.append(test_accuracy())

    assert solver.iter == ITERATIONS
    assert losses[0] > 2.0 and np.mean(losses[-25:]) < 0.4
    assert accuracies[-1] > 0.9 and accuracies[-1] > accuracies[0] + 0.3
    assert not np.array_equal(solver.net.params['conv1'][0].data, initial_conv1)
    assert np.shares_memory(test_net.params['conv1'][0].data, solver.net.params['conv1'][0].data)
    assert solver.net.blobs['conv1'].data.shape == (64, 20, 24, 24)
    assert solver.net.params['conv1'][0].diff.any()


PYLOSS_MODULE = '''
import numpy as np
import cct as caffe


class EuclideanLossLayer(caffe.Layer):
    """pycaffe's examples/pycaffe/layers/pyloss.py."""
    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise Exception('Need two inputs to compute distance.')

    def reshape(self, bottom, top):
        self.diff = np.zeros_like(bottom[0].data, dtype=np.float32)
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.diff[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.diff ** 2) / bottom[0].num / 2.

    def backward(self, top, propagate_down, bottom):
        for i in range(2):
            if propagate_down[i]:
                bottom[i].diff[...] = (1 if i == 0 else -1) * self.diff / bottom[i].num
'''

REGRESSION_NET = """name: 'regression'
layer { name: 'data' type: 'Input' top: 'data' top: 'target'
        input_param { shape { dim: 32 dim: 3 } shape { dim: 32 dim: 1 } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
        inner_product_param { num_output: 1 weight_filler { type: 'gaussian' std: 0.1 } } }
layer { type: 'Python' name: 'loss' bottom: 'ip' bottom: 'target' top: 'loss'
        python_param { module: 'cct_test_pyloss' layer: 'EuclideanLossLayer' } loss_weight: 1 }
"""


def test_python_loss_layer_trains_with_sgd_solver(tmp_path, monkeypatch):
    (tmp_path / 'cct_test_pyloss.py').write_text(PYLOSS_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    net_path = tmp_path / 'regression.prototxt'
    net_path.write_text(REGRESSION_NET)
    solver_path = tmp_path / 'solver.prototxt'
    solver_path.write_text('net: "%s"\nbase_lr: 0.1\nlr_policy: "fixed"\nmomentum: 0.5\n'
                           'max_iter: 1000\ndisplay: 0\nrandom_seed: 2\nsnapshot_prefix: "%s"\n'
                           % (net_path, tmp_path / 'regression'))
    solver = caffe.get_solver(str(solver_path))
    assert isinstance(solver, caffe.SGDSolver)
    assert type(solver.net.layer_dict['loss']).__name__ == 'EuclideanLossLayer'
    rng = np.random.default_rng(0)
    true_w, true_b = np.array([[1.5, -2.0, 0.5]], np.float32), 0.25
    losses = []
    for _ in range(150):
        x = rng.standard_normal((32, 3)).astype(np.float32)
        solver.net.blobs['data'].data[...] = x
        solver.net.blobs['target'].data[...] = x @ true_w.T + true_b
        solver.step(1)
        losses.append(float(solver.net.blobs['loss'].data[0]))
    assert solver.iter == 150
    assert losses[0] > 0.5 and losses[-1] < 1e-6
    np.testing.assert_allclose(solver.net.params['ip'][0].data, true_w, atol=1e-3)
    assert solver.net.params['ip'][1].data[0] == pytest.approx(true_b, abs=1e-3)
