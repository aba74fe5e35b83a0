"""Fixtures of the hybrid-split tests: ``ocl`` (opencl:0, or a skip saying why there is none) from
the device tests' support module, and ``mnist`` (the MNIST test set from ../shared)."""
import importlib.util
import os
import sys

import pytest


def _opencl_support():
    # The device tests' module, by its own name, without putting tests/devices on sys.path (whose
    # conftest would then shadow others' ``from conftest import ...``).
    if 'opencl_support' not in sys.modules:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'devices',
                            'opencl_support.py')
        spec = importlib.util.spec_from_file_location('opencl_support', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules['opencl_support'] = module
    return sys.modules['opencl_support']


ocl = _opencl_support().ocl


@pytest.fixture(scope='module')
def mnist(shared):
    from test_lenet_golden import read_idx
    images = read_idx(os.path.join(shared, 'data', 'mnist', 't10k-images-idx3-ubyte.gz'))
    labels = read_idx(os.path.join(shared, 'data', 'mnist', 't10k-labels-idx1-ubyte.gz'))
    return images, labels
