"""Silence, Filter, BatchReindex and Parameter (cct/layers/routing.py): forward against numpy,
backward (zeros, scatter, accumulation over repeated indices), gradient checks, the Filter first
reshape, Parameter sharing its blob with the top inside a net, and the index-input rules."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.io import parse_text
from cct.net import Net
from cct.proto import caffe_pb2
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker


def test_silence_swallows_and_zeroes_diffs():
    layer, bottom, top = make_layer('type: "Silence"', [(2, 3), (4,)], num_top=0)
    assert top == []
    layer.forward(bottom, top)
    for blob in bottom:
        blob.diff[...] = 5
    layer.backward(top, [True, False], bottom)
    assert not bottom[0].diff.any() and (bottom[1].diff == 5).all()


def filter_layer(selector):
    shapes = [(4, 3, 2), (4, 2), (4, 1, 1)]
    data = [np.arange(24.0).reshape(4, 3, 2), np.arange(8.0).reshape(4, 2) - 3,
            np.array(selector, float).reshape(4, 1, 1)]
    return make_layer('type: "Filter"', shapes, num_top=2, bottom_data=data)


def test_filter_forward_backward_and_gradient():
    layer, bottom, top = filter_layer([0, 1, 0, 1])
    # The first reshape (at setup, before any data) keeps the whole batch, as Caffe's does.
    assert top[0].shape == (4, 3, 2) and top[1].shape == (4, 2)
    layer.reshape(bottom, top)
    assert top[0].shape == (2, 3, 2) and top[1].shape == (2, 2)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, bottom[0].data[[1, 3]])
    np.testing.assert_array_equal(top[1].data, bottom[1].data[[1, 3]])
    top[0].diff[...] = 1
    top[1].diff[...] = 2
    layer.backward(top, [True, True, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff[:, 0, 0], [0, 1, 0, 1])
    np.testing.assert_array_equal(bottom[1].diff[:, 0], [0, 2, 0, 2])
    GradientChecker(1e-2, 1e-3).check(layer, bottom, top, check_bottom=[0, 1])


def test_filter_keeps_nothing_or_everything():
    layer, bottom, top = filter_layer([0, 0, 0, 0])
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    assert top[0].shape == (0, 3, 2)
    layer, bottom, top = filter_layer([1, 2, -1, 0.5])
    layer.reshape(bottom, top)
    assert top[0].shape == (4, 3, 2)


def test_filter_errors():
    with pytest.raises(NetError, match='bottom.size'):
        make_layer('type: "Filter"', [(4, 2), (4,)], num_top=2)
    with pytest.raises(NetError, match='singletons'):
        make_layer('type: "Filter"', [(4, 2), (4, 2)], num_top=1)
    with pytest.raises(NetError, match='same 0th dimension'):
        make_layer('type: "Filter"', [(3, 2), (4,)], num_top=1)
    layer, bottom, top = filter_layer([1, 0, 1, 0])
    with pytest.raises(NetError, match='selector'):
        layer.backward(top, [True, True, True], bottom)
    assert not layer.allow_force_backward(2) and layer.allow_force_backward(0)


def reindex(indices):
    data = [np.random.default_rng(0).standard_normal((5, 2, 3)), np.array(indices, float)]
    return make_layer('type: "BatchReindex"', [(5, 2, 3), (len(indices),)], bottom_data=data)


def test_batch_reindex_forward_backward_and_gradient():
    indices = [4, 0, 4, 2, 1, 1, 1]
    layer, bottom, top = reindex(indices)
    assert top[0].shape == (7, 2, 3)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, bottom[0].data[indices])
    top[0].diff[...] = np.arange(7.0)[:, None, None]
    layer.backward(top, [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].diff[:, 0, 0], [1, 4 + 5 + 6, 3, 0, 0 + 2])
    GradientChecker(1e-2, 1e-3).check(layer, bottom, top, check_bottom=0)


@pytest.mark.parametrize('indices, message', [([0, 5], 'greater than batch size'),
                                              ([-1], 'negative')])
def test_batch_reindex_bad_indices(indices, message):
    layer, bottom, top = reindex(indices)
    with pytest.raises(NetError, match=message):
        layer.forward(bottom, top)


def test_batch_reindex_errors():
    with pytest.raises(NetError, match='1-D'):
        make_layer('type: "BatchReindex"', [(5, 2), (2, 1)])
    layer, bottom, top = reindex([1, 2])
    with pytest.raises(NetError, match='index'):
        layer.backward(top, [True, True], bottom)


def test_parameter_exposes_its_blob():
    layer, bottom, top = make_layer(
        'type: "Parameter" parameter_param { shape { dim: 2 dim: 3 } }', [])
    assert layer.blobs[0].shape == (2, 3) and top[0].shape == (2, 3)
    assert not layer.blobs[0].data.any()  # Caffe gives the blob no filler
    layer.blobs[0].data[...] = 4
    layer.forward(bottom, top)
    assert (top[0].data == 4).all()
    top[0].diff[...] = 1.5
    assert (layer.blobs[0].diff == 1.5).all()


@pytest.mark.parametrize('dims', ['dim: 3', 'dim: 2 dim: 3 dim: 2'])
def test_parameter_gradient(dims):
    layer, bottom, top = make_layer(
        'type: "Parameter" parameter_param { shape { %s } }' % dims, [])
    layer.blobs[0].data[...] = np.random.default_rng(1).standard_normal(layer.blobs[0].shape)
    GradientChecker(1e-2, 1e-3).check(layer, bottom, top)


def test_parameter_learns_in_a_net():
    net = Net(parse_text('''
        layer { name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 3 } } }
        layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 3 } } }
        layer { name: "loss" type: "EuclideanLoss" bottom: "p" bottom: "t" top: "loss" }''',
                         caffe_pb2.NetParameter()), caffe_pb2.TRAIN)
    net.blobs['t'].data[...] = 2
    net.clear_param_diffs()
    loss = net.forward_backward()
    assert loss == pytest.approx(4 * 3 / 3 / 2)
    np.testing.assert_allclose(net.params['p'][0].diff, [-2 / 3] * 3)
    net.update()
    np.testing.assert_allclose(net.blobs['p'].data, [2 / 3] * 3)
