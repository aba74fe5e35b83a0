"""End to end: real Caffe's LeNet weights score the real MNIST test set exactly as Caffe does."""
import gzip
import os

import numpy as np
import pytest

from cct.net import Net
from cct.proto import caffe_pb2


def read_idx(path):
    """An idx(.gz) file (MNIST's format) as a numpy array."""
    with gzip.open(path, 'rb') if path.endswith('.gz') else open(path, 'rb') as f:
        raw = f.read()
    ndim = raw[3]
    dims = np.frombuffer(raw, '>u4', count=ndim, offset=4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(tuple(int(d) for d in dims))


@pytest.fixture(scope='module')
def mnist_test(shared):
    images = read_idx(os.path.join(shared, 'data', 'mnist', 't10k-images-idx3-ubyte.gz'))
    labels = read_idx(os.path.join(shared, 'data', 'mnist', 't10k-labels-idx1-ubyte.gz'))
    return images, labels


def lenet_score(net, images, labels, batch):
    """Caffe's LeNet TEST net run over the MNIST test set in batches: (accuracy, mean loss)."""
    net.blobs['data'].reshape(batch, 1, 28, 28)
    net.reshape()
    correct, losses = 0, []
    for start in range(0, len(labels), batch):
        # Caffe's lenet_train_test.prototxt scales pixels by 0.00390625 = 1/256.
        net.blobs['data'].data[...] = images[start:start + batch, None] * np.float32(0.00390625)
        prob = net.forward()['prob']
        truth = labels[start:start + batch]
        correct += int((prob.argmax(axis=1) == truth).sum())
        picked = prob[np.arange(batch), truth]
        losses.append(-np.log(np.maximum(picked, np.finfo(np.float32).tiny)).mean())
    return correct / len(labels), float(np.mean(losses))


def test_lenet_iter_10000_scores_like_caffe(shared, mnist_test):
    images, labels = mnist_test
    net = Net(os.path.join(shared, 'nets', 'lenet.prototxt'), caffe_pb2.TEST,
              weights=os.path.join(shared, 'models', 'lenet_iter_10000.caffemodel'))
    accuracy, loss = lenet_score(net, images, labels, 100)
    assert accuracy == pytest.approx(0.9914, abs=1e-4)
    assert loss == pytest.approx(0.02727, abs=1e-4)
