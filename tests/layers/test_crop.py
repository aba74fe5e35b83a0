"""Crop (cct/layers/crop.py): Caffe's test_crop_layer cases (default axis, all axes, per-axis offsets,
negative axis), forward against explicit index arithmetic, backward to bottom 0 only, and errors."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.io.protofiles import parse_text
from cct.net import Net
from cct.proto import caffe_pb2
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

DATA = (2, 4, 5, 4)


def crop_layer(params, size_shape, data_shape=DATA, **kwargs):
    return make_layer('type: "Crop" crop_param { %s }' % params, [data_shape, size_shape], **kwargs)


def index_reference(x, out_shape, offsets):
    """top[i0, i1, ...] = bottom[i0 + o0, i1 + o1, ...], one full offset per axis."""
    index = np.indices(out_shape)
    return x[tuple(index[k] + offsets[k] for k in range(x.ndim))]


@pytest.mark.parametrize('params, size_shape, top_shape, offsets', [
    ('', (1, 1, 2, 3), (2, 4, 2, 3), (0, 0, 0, 0)),                    # default axis 2, no offset
    ('offset: 1', (1, 1, 3, 2), (2, 4, 3, 2), (0, 0, 1, 1)),           # one offset for all axes
    ('axis: 0 offset: 0 offset: 1 offset: 1 offset: 2', (2, 2, 4, 2), (2, 2, 4, 2), (0, 1, 1, 2)),
    ('axis: 1 offset: 1 offset: 2 offset: 0', (9, 3, 3, 4), (2, 3, 3, 4), (0, 1, 2, 0)),
    ('axis: -1 offset: 2', (1, 1, 1, 2), (2, 4, 5, 2), (0, 0, 0, 2)),  # negative axis
    ('axis: 0', (1, 2, 3, 4), (1, 2, 3, 4), (0, 0, 0, 0)),             # crop every axis
])
def test_forward_backward_and_gradient(params, size_shape, top_shape, offsets):
    layer, bottom, top = crop_layer(params, size_shape, seed=1)
    layer.forward(bottom, top)
    assert top[0].shape == top_shape
    np.testing.assert_array_equal(top[0].data, index_reference(bottom[0].data, top_shape, offsets))
    bottom[1].diff[...] = 7.0
    top[0].diff[...] = np.arange(top[0].count).reshape(top_shape) + 1.0
    layer.backward(top, [True, True], bottom)
    expected = np.zeros(DATA)
    expected[tuple(np.indices(top_shape)[k] + offsets[k] for k in range(4))] = top[0].diff
    np.testing.assert_array_equal(bottom[0].diff, expected)
    # Bottom 1 only supplies a shape: its gradient is never written.
    assert (bottom[1].diff == 7.0).all()
    GradientChecker(1e-2, 1e-3).check(layer, bottom, top, check_bottom=0)


def test_leading_axes_keep_bottom_0_sizes_and_reshape_follows():
    layer, bottom, top = crop_layer('offset: 1', (5, 7, 2, 2), seed=2)
    assert top[0].shape == (2, 4, 2, 2)
    bottom[1].reshape(1, 1, 3, 1)
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, bottom[0].data[:, :, 1:4, 1:2])


def test_no_backward_without_propagate_down():
    layer, bottom, top = crop_layer('offset: 1', (1, 1, 2, 2))
    bottom[0].diff[...] = 3.0
    layer.backward(top, [False, False], bottom)
    assert (bottom[0].diff == 3.0).all()


@pytest.mark.parametrize('params, size_shape, message', [
    ('offset: 1 offset: 2 offset: 3', (1, 1, 2, 2), 'must be equal to the number of dimensions'),
    ('offset: 3', (1, 1, 3, 2), 'dimension 2 is out-of-bounds with size 3 and offset 3'),
    ('axis: 1 offset: 0 offset: 0 offset: 1', (1, 4, 5, 4), 'dimension 3 is out-of-bounds'),
    ('', (1, 1, 6, 2), 'dimension 2 is out-of-bounds'),
    ('axis: 4', (1, 1, 2, 2), 'crop axis'),
    ('', (2, 2), 'at least the 4 axes'),
])
def test_errors(params, size_shape, message):
    with pytest.raises(NetError, match=message):
        crop_layer(params, size_shape)


FCN_NET = '''
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 13 dim: 13 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 3 kernel_size: 3 stride: 2
                            weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "up" type: "Deconvolution" bottom: "conv" top: "up" param { lr_mult: 0 }
        convolution_param { num_output: 3 kernel_size: 4 stride: 2 group: 3 bias_term: false
                            weight_filler { type: "bilinear" } } }
layer { name: "crop" type: "Crop" bottom: "up" bottom: "data" top: "score"
        crop_param { axis: 2 offset: 1 } }
layer { name: "loss" type: "EuclideanLoss" bottom: "score" bottom: "data" top: "loss" }
'''


def test_fcn_style_upsample_and_crop_in_a_net():
    """Caffe's FCN pattern: a fixed bilinear Deconvolution upsamples, Crop aligns with the input."""
    net = Net(parse_text(FCN_NET, caffe_pb2.NetParameter(), '<fcn>'), caffe_pb2.TRAIN,
              dtype=np.float64)
    net.blobs['data'].data[...] = np.random.default_rng(0).standard_normal((2, 3, 13, 13))
    loss = float(net.forward()['loss'])
    assert net.blobs['up'].data.shape == (2, 3, 14, 14)
    assert net.blobs['score'].data.shape == (2, 3, 13, 13)
    np.testing.assert_array_equal(net.blobs['score'].data, net.blobs['up'].data[:, :, 1:, 1:])
    assert np.isfinite(loss) and loss > 0
    net.clear_param_diffs()
    net.backward()
    assert np.abs(net.params['conv'][0].diff).sum() > 0
    assert not net.params['up'][0].diff.any()  # lr_mult 0: the bilinear kernel stays fixed
