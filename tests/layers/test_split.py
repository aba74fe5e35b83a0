"""Split (cct/layers/split.py): every top shares the bottom's data; backward sums the tops' diffs;
gradients; in-place refused (Caffe's split_layer.cpp)."""
import numpy as np

from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker


def test_tops_share_the_bottom_data():
    layer, bottom, top = make_layer('type: "Split"', [(2, 3, 4)], num_top=3, seed=1)
    assert all(t.shape == (2, 3, 4) and t.shares_data_with(bottom[0]) for t in top)
    bottom[0].data[0, 0, 0] = 42
    layer.forward(bottom, top)
    assert all(t.data[0, 0, 0] == 42 for t in top)


def test_backward_sums_the_diffs():
    for count in (1, 2, 3):
        layer, bottom, top = make_layer('type: "Split"', [(3, 2)], num_top=count)
        for k, t in enumerate(top):
            t.diff[...] = np.arange(6).reshape(3, 2) * (k + 1)
        layer.backward(top, [True], bottom)
        np.testing.assert_array_equal(bottom[0].diff,
                                      np.arange(6).reshape(3, 2) * sum(range(1, count + 1)))


def test_reshape_follows_the_bottom():
    layer, bottom, top = make_layer('type: "Split"', [(2, 3)], num_top=2)
    bottom[0].reshape(4, 5)
    layer.reshape(bottom, top)
    assert [t.shape for t in top] == [(4, 5)] * 2 and top[1].shares_data_with(bottom[0])


def test_gradient():
    layer, bottom, top = make_layer('type: "Split"', [(2, 3, 2)], num_top=2, seed=4)
    GradientChecker(1e-2, 1e-2).check(layer, bottom, top)


def test_split_refuses_in_place():
    from cct.layers.split import SplitLayer
    assert SplitLayer.inplace is False
