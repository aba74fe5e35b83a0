"""MemoryData through pycaffe's ``Net.set_input_arrays``: batches in turn with wrap-around, arrays
read in place, float64 nets, set_batch_size, and the errors."""
import numpy as np
import pytest

import cct
from cct.errors import DataError
from cct.io import parse_text
from cct.proto import caffe_pb2

NET = '''layer { name: "memory" type: "MemoryData" top: "data" top: "label"
                 memory_data_param { batch_size: 2 channels: 1 height: 2 width: 3 } }'''


def memory_net(text=NET, dtype=np.float32):
    return cct.Net(parse_text(text, caffe_pb2.NetParameter()), caffe_pb2.TEST, dtype=dtype)


def arrays(n=6):
    data = np.arange(n * 6, dtype=np.float32).reshape(n, 1, 2, 3)
    return data, np.arange(n, dtype=np.float32) * 10


def test_batches_in_turn_and_wrap():
    net = memory_net()
    assert net.blobs['data'].shape == (2, 1, 2, 3) and net.blobs['label'].shape == (2,)
    data, labels = arrays()
    net.set_input_arrays(data, labels)
    for start in (0, 2, 4, 0):
        net.forward()
        np.testing.assert_array_equal(net.blobs['data'].data, data[start:start + 2])
        np.testing.assert_array_equal(net.blobs['label'].data, labels[start:start + 2])


def test_arrays_are_read_in_place_and_reset_restarts():
    net = memory_net(dtype=np.float64)
    data, labels = arrays(4)
    net.set_input_arrays(data, labels)
    net.forward()
    data[2:] = -1
    net.forward()
    np.testing.assert_array_equal(net.blobs['data'].data, -np.ones((2, 1, 2, 3)))
    assert net.blobs['data'].data.dtype == np.float64
    net.set_input_arrays(*arrays(2))
    net.forward()
    np.testing.assert_array_equal(net.blobs['label'].data, [0, 10])


def test_set_batch_size():
    net = memory_net()
    layer = net.layers[0]
    data, labels = arrays(6)
    layer.reset(data, labels)
    layer.set_batch_size(3)
    net.forward()
    assert net.blobs['data'].shape == (3, 1, 2, 3)
    np.testing.assert_array_equal(net.blobs['label'].data, [0, 10, 20])
    with pytest.raises(DataError, match='n must be a multiple of batch size'):
        layer.set_batch_size(4)


def test_errors():
    net = memory_net()
    with pytest.raises(DataError, match='needs to be initialized by calling Reset'):
        net.forward()
    with pytest.raises(DataError, match='n must be a multiple of batch size \\(3 items'):
        net.layers[0].reset(*arrays(3))
    with pytest.raises(DataError, match='each item must be 1 x 2 x 3'):
        net.layers[0].reset(np.zeros((2, 1, 3, 2), np.float32), np.zeros(2, np.float32))
    with pytest.raises(DataError, match='must be specified and positive'):
        memory_net(NET.replace('channels: 1', 'channels: 0'))
