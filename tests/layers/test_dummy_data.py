"""DummyData: shapes (shape or legacy dims, once or per top), constant tops filled once, random tops
refilled every forward, and Caffe's errors."""
import numpy as np
import pytest

import cct
from cct.errors import NetError
from cct.io import parse_text
from cct.proto import caffe_pb2


def dummy_net(params, tops=('a', 'b')):
    text = 'layer { name: "dummy" type: "DummyData" %s dummy_data_param { %s } }' % (
        ' '.join('top: "%s"' % t for t in tops), params)
    return cct.Net(parse_text(text, caffe_pb2.NetParameter()), caffe_pb2.TRAIN)


def test_shapes_and_constant_fill_once():
    net = dummy_net('shape { dim: 2 dim: 3 } shape { dim: 4 } '
                    'data_filler { type: "constant" value: 7 }')
    assert net.blobs['a'].shape == (2, 3) and net.blobs['b'].shape == (4,)
    assert (net.blobs['a'].data == 7).all() and (net.blobs['b'].data == 7).all()
    net.blobs['a'].data[...] = 1
    net.forward()
    assert (net.blobs['a'].data == 1).all()  # constant tops are not refilled


def test_random_tops_refill_every_forward_and_default_is_zero():
    net = dummy_net('num: 2 channels: 3 height: 1 width: 2 data_filler { type: "gaussian" } '
                    'data_filler { type: "constant" }')
    assert net.blobs['a'].shape == (2, 3, 1, 2) == net.blobs['b'].shape
    net.forward()
    first = net.blobs['a'].data.copy()
    net.forward()
    assert not np.array_equal(first, net.blobs['a'].data)
    assert (net.blobs['b'].data == 0).all()
    zero = dummy_net('shape { dim: 3 }', tops=('z',))
    zero.forward()
    assert (zero.blobs['z'].data == 0).all()


@pytest.mark.parametrize('params, message', [
    ('shape { dim: 1 } num: 1 channels: 1 height: 1 width: 1',
     'Both shape and legacy fields were specified'),
    ('num: 1 num: 2 num: 3 channels: 1 height: 1 width: 1', "Must specify 'num' once"),
    ('shape { dim: 1 } shape { dim: 1 } shape { dim: 1 }', "Must specify 'shape' once"),
    ('shape { dim: 1 } data_filler { } data_filler { } data_filler { }',
     'Number of data fillers must be 0, 1 or equal to the number of tops: 2'),
])
def test_errors(params, message):
    with pytest.raises(NetError, match=message):
        dummy_net(params)
