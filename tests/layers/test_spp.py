"""SPP (cct/layers/spp.py): Caffe's shapes (test_spp_layer), forward against per-level Pooling layers and
a direct window reference, gradients for MAX and AVE, the STOCHASTIC phase quirk, and errors."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.io.protofiles import parse_text
from cct.net import Net
from cct.proto import caffe_pb2
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker


def spp_layer(params, shape, **kwargs):
    return make_layer('type: "SPP" spp_param { %s }' % params, [shape], **kwargs)


def level_params(level, height, width):
    """Caffe's GetPoolingParam, written out: kernel ceil(H/bins), stride kernel, pad (rem+1)/2."""
    bins = 2 ** level
    kernel_h, kernel_w = int(np.ceil(height / bins)), int(np.ceil(width / bins))
    pad_h, pad_w = (kernel_h * bins - height + 1) // 2, (kernel_w * bins - width + 1) // 2
    return ('kernel_h: %d kernel_w: %d stride_h: %d stride_w: %d pad_h: %d pad_w: %d'
            % (kernel_h, kernel_w, kernel_h, kernel_w, pad_h, pad_w))


def direct_max_level(x, level):
    """MAX over each bin's window, clipped to the image, computed without cct's pooling."""
    num, channels, height, width = x.shape
    bins = 2 ** level
    kernel_h, kernel_w = -(-height // bins), -(-width // bins)
    pad_h, pad_w = (kernel_h * bins - height + 1) // 2, (kernel_w * bins - width + 1) // 2
    out = np.empty((num, channels, bins, bins))
    for ph in range(bins):
        for pw in range(bins):
            h0, w0 = ph * kernel_h - pad_h, pw * kernel_w - pad_w
            window = x[:, :, max(h0, 0):h0 + kernel_h, max(w0, 0):w0 + kernel_w]
            out[:, :, ph, pw] = window.max(axis=(2, 3))
    return out.reshape(num, -1)


@pytest.mark.parametrize('shape, height, channels', [
    ((2, 3, 9, 8), 3, 63),            # Caffe's TestSetup
    ((1, 3, 1024, 765), 5, 1023),     # TestEqualOutputDims (N=4 there): a last window clipped
    ((10, 3, 7, 7), 3, 63),           # TestEqualOutputDims2
])
def test_setup_shapes(shape, height, channels):
    _, _, top = spp_layer('pyramid_height: %d' % height, shape)
    assert top[0].shape == (shape[0], channels)


def test_single_level_keeps_the_pooling_shape():
    layer, bottom, top = spp_layer('pyramid_height: 1', (2, 3, 5, 4), seed=1)
    assert top[0].shape == (2, 3, 1, 1)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data[:, :, 0, 0], bottom[0].data.max(axis=(2, 3)))


@pytest.mark.parametrize('pool', ['MAX', 'AVE'])
@pytest.mark.parametrize('shape', [(2, 3, 9, 8), (1, 2, 7, 10)])
def test_forward_is_the_concatenation_of_pooled_levels(pool, shape):
    layer, bottom, top = spp_layer('pyramid_height: 3 pool: %s' % pool, shape, seed=2)
    layer.forward(bottom, top)
    pieces = []
    for level in range(3):
        pooling, pool_bottom, pool_top = make_layer(
            'type: "Pooling" pooling_param { pool: %s %s }'
            % (pool, level_params(level, shape[2], shape[3])), [shape],
            bottom_data=[bottom[0].data])
        pooling.forward(pool_bottom, pool_top)
        assert pool_top[0].shape[2:] == (2 ** level,) * 2
        pieces.append(pool_top[0].data.reshape(shape[0], -1))
        if pool == 'MAX':
            np.testing.assert_array_equal(pieces[-1], direct_max_level(bottom[0].data, level))
    np.testing.assert_array_equal(top[0].data, np.concatenate(pieces, axis=1))


@pytest.mark.parametrize('pool', ['MAX', 'AVE'])
def test_gradient(pool):
    # Caffe's TestGradient: (2, 3, 9, 8), pyramid_height 3, stepsize 1e-4, threshold 1e-2.
    layer, bottom, top = spp_layer('pyramid_height: 3 pool: %s' % pool, (2, 3, 9, 8), seed=3)
    GradientChecker(1e-4, 1e-2).check(layer, bottom, top)


def test_backward_sums_the_levels():
    layer, bottom, top = spp_layer('pyramid_height: 2 pool: AVE', (1, 1, 4, 4))
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    # Level 0 spreads 1/16 over the plane, level 1 spreads 1/4 over each 2x2 quadrant.
    np.testing.assert_allclose(bottom[0].diff, np.full((1, 1, 4, 4), 1 / 16 + 1 / 4))


def test_reshape_rebuilds_the_pyramid():
    layer, bottom, top = spp_layer('pyramid_height: 2', (1, 2, 4, 4), seed=4)
    bottom[0].reshape(3, 2, 6, 5)
    bottom[0].data[...] = np.random.default_rng(0).standard_normal((3, 2, 6, 5))
    layer.reshape(bottom, top)
    layer.forward(bottom, top)
    assert top[0].shape == (3, 10)
    np.testing.assert_array_equal(top[0].data[:, :2], bottom[0].data.max(axis=(2, 3)))


def test_stochastic_levels_always_sample():
    """Caffe's inner Pooling layers get a fresh LayerParameter, hence phase TRAIN even in a TEST net:
    the level-0 output is a sampled input value, not the probability-weighted average."""
    values = np.random.default_rng(5).uniform(0.1, 1.0, (2, 3, 4, 4))
    layer, bottom, top = spp_layer('pyramid_height: 2 pool: STOCHASTIC', (2, 3, 4, 4),
                                   bottom_data=[values], phase=caffe_pb2.TEST)
    layer.forward(bottom, top)
    for n in range(2):
        for c in range(3):
            assert top[0].data[n, c] in values[n, c]


@pytest.mark.parametrize('params, shape, message', [
    ('', (1, 1, 4, 4), 'pyramid_height must be at least 1'),
    ('pyramid_height: 3', (1, 1, 3, 3), r'level 2 \(4 bins per side\).*smaller than the kernel'),
    ('pyramid_height: 2 pool: STOCHASTIC', (1, 1, 5, 5), 'padding implemented only'),
    ('pyramid_height: 2', (1, 4, 4), '4 axes'),
])
def test_errors(params, shape, message):
    with pytest.raises(NetError, match=message):
        spp_layer(params, shape)


SPP_NET = '''
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 3 dim: 2 dim: 9 dim: 11 } shape { dim: 3 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 2 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "spp" type: "SPP" bottom: "conv" top: "spp" spp_param { pyramid_height: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "spp" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
'''


def test_spp_net_runs_forward_and_backward():
    net = Net(parse_text(SPP_NET, caffe_pb2.NetParameter(), '<spp>'), caffe_pb2.TRAIN,
              dtype=np.float64)
    net.blobs['data'].data[...] = np.random.default_rng(0).standard_normal((3, 2, 9, 11))
    net.blobs['label'].data[...] = [0, 2, 1]
    loss = float(net.forward()['loss'])
    assert net.blobs['spp'].data.shape == (3, 4 * 5)
    assert np.isfinite(loss) and loss > 0
    net.clear_param_diffs()
    net.backward()
    assert np.abs(net.params['conv'][0].diff).sum() > 0
