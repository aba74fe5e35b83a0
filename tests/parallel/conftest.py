"""Fixtures of the hybrid-split tests: ``ocl`` (opencl:0, or a skip saying why there is none) from
the device tests' support module, and ``mnist`` (the MNIST test set from ../shared)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'devices'))
from opencl_support import ocl  # noqa: E402,F401  (a fixture, found by name)


@pytest.fixture(scope='module')
def mnist(shared):
    from test_lenet_golden import read_idx
    images = read_idx(os.path.join(shared, 'data', 'mnist', 't10k-images-idx3-ubyte.gz'))
    labels = read_idx(os.path.join(shared, 'data', 'mnist', 't10k-labels-idx1-ubyte.gz'))
    return images, labels
