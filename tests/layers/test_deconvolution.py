"""Deconvolution (cct/layers/deconvolution.py): shapes, forward against a direct scatter written here,
the adjoint relation with Convolution, gradients for several pad/stride/group/dilation settings, batch
partitions, and Caffe's error cases."""
import numpy as np
import pytest

from cct import workspace
from cct.errors import NetError
from cct.layers.base import layer_class
from cct.layers.deconvolution import DeconvolutionLayer
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

FILLERS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" }'


def deconv_layer(params, bottom_shapes, **kwargs):
    text = 'type: "Deconvolution" convolution_param { %s %s }' % (params, FILLERS)
    return make_layer(text, bottom_shapes, **kwargs)


def scatter_reference(x, weights, bias, stride, pad, dilation, group):
    """Each input pixel adds its weighted kernel into the output at stride spacing; then crop pad."""
    num, channels, height, width = x.shape
    kernel_h, kernel_w = weights.shape[2:]
    per_group_in, per_group_out = channels // group, weights.shape[1]
    full_h = stride[0] * (height - 1) + dilation[0] * (kernel_h - 1) + 1
    full_w = stride[1] * (width - 1) + dilation[1] * (kernel_w - 1) + 1
    full = np.zeros((num, per_group_out * group, full_h, full_w))
    for g in range(group):
        ins = slice(g * per_group_in, (g + 1) * per_group_in)
        outs = slice(g * per_group_out, (g + 1) * per_group_out)
        for i in range(kernel_h):
            for j in range(kernel_w):
                rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (height - 1) + 1,
                             stride[0])
                cols = slice(j * dilation[1], j * dilation[1] + stride[1] * (width - 1) + 1,
                             stride[1])
                full[:, outs, rows, cols] += np.einsum('nchw,co->nohw', x[:, ins],
                                                       weights[ins, :, i, j])
    out = full[:, :, pad[0]:full_h - pad[0], pad[1]:full_w - pad[1]]
    return out + (bias[None, :, None, None] if bias is not None else 0)


SETTINGS = [
    # (params, bottom shape, stride, pad, dilation, group)
    ('num_output: 3 kernel_size: 3', (2, 2, 3, 3), (1, 1), (0, 0), (1, 1), 1),
    ('num_output: 2 kernel_size: 3 stride: 2 pad: 1', (2, 2, 3, 3), (2, 2), (1, 1), (1, 1), 1),
    ('num_output: 4 kernel_size: 2 stride: 2 group: 2', (2, 4, 2, 3), (2, 2), (0, 0), (1, 1), 2),
    ('num_output: 2 kernel_size: 3 pad: 2 dilation: 2', (1, 2, 3, 3), (1, 1), (2, 2), (2, 2), 1),
    ('num_output: 2 kernel_h: 2 kernel_w: 3 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0',
     (2, 2, 3, 2), (2, 1), (1, 0), (1, 1), 1),
    ('num_output: 6 kernel_size: 3 stride: 3 pad: 1 group: 3 dilation: 1 bias_term: false',
     (1, 3, 2, 2), (3, 3), (1, 1), (1, 1), 3),
]


@pytest.mark.parametrize('lowering', ['full', 'rows', 'panels'])
@pytest.mark.parametrize('params, shape, stride, pad, dilation, group', SETTINGS)
def test_forward_matches_scatter_and_gradients(params, shape, stride, pad, dilation, group,
                                               lowering, monkeypatch):
    """Every lowering of the top (see test_convolution): all taps, and rows or panels for
    stride_h 1."""
    monkeypatch.setattr(workspace, 'LOWERING', lowering)
    layer, bottom, top = deconv_layer(params, [shape], seed=3)
    method = lowering if stride[0] == 1 else 'full'
    assert layer.lowering == workspace.Lowering(method, method, method)
    layer.forward(bottom, top)
    bias = layer.blobs[1].data if len(layer.blobs) == 2 else None
    expected = scatter_reference(bottom[0].data, layer.blobs[0].data, bias, stride, pad,
                                 dilation, group)
    assert top[0].shape == expected.shape
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-12, atol=1e-12)
    GradientChecker(1e-2, 1e-3).check(layer, bottom, top)


def test_shapes_follow_caffe():
    layer, bottom, top = deconv_layer('num_output: 6 kernel_size: 4 stride: 2 pad: 1 group: 2',
                                      [(2, 4, 5, 7)])
    # weights are (C_in, num_output / group, kh, kw): input channels first.
    assert layer.blobs[0].shape == (4, 3, 4, 4)
    assert layer.blobs[1].shape == (6,)
    # out = stride * (in - 1) + dilation * (k - 1) + 1 - 2 * pad
    assert top[0].shape == (2, 6, 10, 14)
    layer, _, top = deconv_layer('num_output: 1 kernel_size: 3 dilation: 3 stride: 1',
                                 [(1, 1, 4, 4)])
    assert top[0].shape == (1, 1, 10, 10)
    assert layer_class('DECONVOLUTION') is DeconvolutionLayer


def test_caffe_simple_deconvolution():
    """Caffe's TestSimpleDeconvolution: ones through ones, stride 2 overlaps on even rows/columns."""
    layer, bottom, top = make_layer(
        'type: "Deconvolution" convolution_param { num_output: 4 kernel_size: 3 stride: 2 '
        'weight_filler { type: "constant" value: 1 } bias_filler { type: "constant" value: 0.1 } }',
        [(2, 3, 6, 4)], bottom_data=[np.ones((2, 3, 6, 4))])
    layer.forward(bottom, top)
    assert top[0].shape == (2, 4, 13, 9)
    rows = np.arange(13) % 2 == 0
    rows[[0, -1]] = False
    cols = np.arange(9) % 2 == 0
    cols[[0, -1]] = False
    overlaps = rows[:, None].astype(int) + cols[None, :].astype(int)
    bias = float(np.float32(0.1))  # FillerParameter.value is a proto float
    expected = 3 + bias + np.choose(overlaps, [0.0, 3.0, 9.0])
    np.testing.assert_allclose(top[0].data, np.broadcast_to(expected, (2, 4, 13, 9)), rtol=1e-12)


def test_is_the_adjoint_of_convolution():
    """<conv(x), y> == <x, deconv(y)> when both use the same weight blob."""
    geometry = 'kernel_size: 3 stride: 2 pad: 1 dilation: 1 group: 2 bias_term: false'
    conv, conv_bottom, conv_top = make_layer(
        'type: "Convolution" convolution_param { num_output: 4 %s %s }' % (geometry, FILLERS),
        [(2, 6, 7, 7)], seed=1)
    deconv, deconv_bottom, deconv_top = deconv_layer('num_output: 6 %s' % geometry,
                                                     [(2, 4, 4, 4)], seed=2)
    deconv.blobs[0].data[...] = conv.blobs[0].data
    conv.forward(conv_bottom, conv_top)
    deconv.forward(deconv_bottom, deconv_top)
    assert deconv_top[0].shape == conv_bottom[0].shape
    left = np.vdot(conv_top[0].data, deconv_bottom[0].data)
    right = np.vdot(conv_bottom[0].data, deconv_top[0].data)
    np.testing.assert_allclose(left, right, rtol=1e-12)


def test_bilinear_upsampling_reproduces_a_constant():
    """Caffe's FCN idiom: a fixed bilinear kernel of 2*factor - factor%2, stride factor, pad
    ceil((factor-1)/2), group = channels, upsamples by ``factor`` and keeps constants in the interior."""
    layer, bottom, top = make_layer(
        'type: "Deconvolution" convolution_param { num_output: 3 kernel_size: 4 stride: 2 pad: 1 '
        'group: 3 bias_term: false weight_filler { type: "bilinear" } }', [(1, 3, 5, 5)],
        bottom_data=[np.full((1, 3, 5, 5), 2.0)])
    layer.forward(bottom, top)
    assert top[0].shape == (1, 3, 10, 10)
    np.testing.assert_allclose(top[0].data[:, :, 1:-1, 1:-1], 2.0)


def test_several_bottoms_share_weights():
    layer, bottom, top = deconv_layer('num_output: 2 kernel_size: 2 stride: 2',
                                      [(2, 3, 3, 3), (2, 3, 3, 3)], num_top=2, seed=4)
    layer.forward(bottom, top)
    for b, t in zip(bottom, top):
        expected = scatter_reference(b.data, layer.blobs[0].data, layer.blobs[1].data, (2, 2),
                                     (0, 0), (1, 1), 1)
        np.testing.assert_allclose(t.data, expected, rtol=1e-12, atol=1e-12)
    GradientChecker(1e-2, 1e-3).check(layer, bottom, top)


def test_partitions_give_the_same_result(monkeypatch):
    params = 'num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2'
    whole, bottom, top = deconv_layer(params, [(5, 4, 4, 4)], seed=5)
    whole.forward(bottom, top)
    top[0].diff[...] = np.random.default_rng(0).standard_normal(top[0].shape)
    whole.backward(top, [True], bottom)
    expected = [top[0].data.copy(), bottom[0].diff.copy(), whole.blobs[0].diff.copy(),
                whole.blobs[1].diff.copy()]
    # A budget of two images' column buffers (one group's: 2 channels x 9 taps x 16 pixels, in
    # float64) splits the batch of 5 into 3 partitions.
    monkeypatch.setattr(workspace, 'LOWERING_BUDGET_BYTES', 2 * 2 * 9 * 16 * 8)
    split, _, split_top = deconv_layer(params, [(5, 4, 4, 4)], bottom_data=[bottom[0].data])
    assert split.partition == 2
    split.blobs[0].data[...] = whole.blobs[0].data
    split.blobs[1].data[...] = whole.blobs[1].data
    split.forward(bottom, split_top)
    split_top[0].diff[...] = top[0].diff
    bottom[0].diff[...] = 0
    split.backward(split_top, [True], bottom)
    got = [split_top[0].data, bottom[0].diff, split.blobs[0].diff, split.blobs[1].diff]
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_frozen_weights_still_backpropagate():
    layer, bottom, top = deconv_layer('num_output: 2 kernel_size: 3 stride: 2', [(2, 2, 3, 3)],
                                      seed=6)
    layer.param_propagate_down = [False, False]
    layer.forward(bottom, top)
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    assert not layer.blobs[0].diff.any() and not layer.blobs[1].diff.any()
    # With pad 0 nothing is cropped: each pixel's gradient is the sum of its channel's weights.
    expected = layer.blobs[0].data.sum(axis=(1, 2, 3))
    np.testing.assert_allclose(bottom[0].diff, np.broadcast_to(expected[None, :, None, None],
                                                               (2, 2, 3, 3)))


def test_float32_matches_float64():
    layer64, bottom64, top64 = deconv_layer('num_output: 3 kernel_size: 3 stride: 2 pad: 1',
                                            [(2, 4, 5, 5)], seed=7)
    layer32, bottom32, top32 = deconv_layer('num_output: 3 kernel_size: 3 stride: 2 pad: 1',
                                            [(2, 4, 5, 5)], dtype=np.float32,
                                            bottom_data=[bottom64[0].data])
    for b32, b64 in zip(layer32.blobs, layer64.blobs):
        b32.data[...] = b64.data
    layer64.forward(bottom64, top64)
    layer32.forward(bottom32, top32)
    assert top32[0].data.dtype == np.float32
    np.testing.assert_allclose(top32[0].data, top64[0].data, rtol=1e-4, atol=1e-5)


def test_directional_gradient_on_a_larger_layer():
    layer, bottom, top = deconv_layer('num_output: 8 kernel_size: 4 stride: 2 pad: 1 group: 2',
                                      [(3, 16, 10, 10)], seed=8)
    GradientChecker(1e-3, 1e-4).check_directional(layer, bottom, top, directions=3)


@pytest.mark.parametrize('params, shape, message', [
    ('num_output: 4 kernel_size: 3 group: 2', (1, 3, 4, 4), 'divisible by group'),
    ('num_output: 3 kernel_size: 3 group: 2', (1, 4, 4, 4), 'divisible by group'),
    ('kernel_size: 3', (1, 2, 4, 4), 'num_output'),
    ('num_output: 2', (1, 2, 4, 4), 'kernel_size'),
    ('num_output: 2 kernel_size: 1 pad: 1', (1, 2, 1, 1), 'output would be empty'),
    ('num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3', (1, 2, 4, 4), 'not both'),
])
def test_errors(params, shape, message):
    with pytest.raises(NetError, match=message):
        deconv_layer(params, [shape])
