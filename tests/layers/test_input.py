"""Input (cct/layers/input.py): one shape for every top, one per top, or none; reshape keeps what the
user set; forward leaves the data alone; the shape-count error (Caffe's input_layer.cpp)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.testing import make_layer


def test_one_shape_for_every_top():
    _, _, top = make_layer('type: "Input" input_param { shape { dim: 2 dim: 3 } }', num_top=3)
    assert [t.shape for t in top] == [(2, 3)] * 3


def test_one_shape_per_top():
    _, _, top = make_layer('type: "Input" input_param { shape { dim: 2 dim: 3 dim: 4 } '
                           'shape { dim: 2 } shape { } }', num_top=3)
    assert [t.shape for t in top] == [(2, 3, 4), (2,), ()]


def test_no_shape_and_user_reshapes_survive():
    layer, bottom, top = make_layer('type: "Input"', num_top=1)
    top[0].reshape(5, 2)
    top[0].data[...] = 7
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    assert top[0].shape == (5, 2) and (top[0].data == 7).all()


def test_shape_count_must_match():
    with pytest.raises(NetError, match="must specify 'shape' once, once per top blob, or not at "
                                       'all: 3 tops vs. 2 shapes'):
        make_layer('type: "Input" input_param { shape { dim: 1 } shape { dim: 2 } }', num_top=3)


def test_input_takes_no_bottom():
    with pytest.raises(NetError, match='takes 0 bottom blob'):
        make_layer('type: "Input" input_param { shape { dim: 1 } }', [(1,)])
    assert np.dtype('float64') == make_layer('type: "Input"', num_top=1)[2][0].dtype
