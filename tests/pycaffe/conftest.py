"""Fixtures for the pycaffe API tests: the real MNIST test images and the real LeNet files, read
through the ``shared`` fixture."""
import gzip
import importlib
import os

import numpy as np
import pytest


def read_idx(path):
    """An idx(.gz) file (MNIST's format) as a numpy array."""
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    ndim = raw[3]
    dims = np.frombuffer(raw, '>u4', count=ndim, offset=4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(tuple(int(d) for d in dims))


@pytest.fixture(scope='session')
def mnist(shared):
    """(images N x 28 x 28 uint8, labels N uint8) of the real MNIST test set."""
    images = read_idx(os.path.join(shared, 'data', 'mnist', 't10k-images-idx3-ubyte.gz'))
    labels = read_idx(os.path.join(shared, 'data', 'mnist', 't10k-labels-idx1-ubyte.gz'))
    return images, labels


@pytest.fixture(scope='session')
def lenet_files(shared):
    """(deploy prototxt, caffemodel) of Caffe's LeNet trained by real Caffe."""
    return (os.path.join(shared, 'nets', 'lenet.prototxt'),
            os.path.join(shared, 'models', 'lenet_iter_10000.caffemodel'))


@pytest.fixture
def restore_logging():
    """init_log reconfigures cct's logger; put it back as it was."""
    # ``cct.log`` is pycaffe's log() function; the logging module is only reachable by name.
    cct_log = importlib.import_module('cct.log')
    logger = cct_log.logger
    saved = (list(logger.handlers), logger.level, logger.propagate, cct_log._handler)
    yield
    for handler in list(logger.handlers):
        if handler not in saved[0]:
            logger.removeHandler(handler)
    for handler in saved[0]:
        if handler not in logger.handlers:
            logger.addHandler(handler)
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
    cct_log._handler = saved[3]
