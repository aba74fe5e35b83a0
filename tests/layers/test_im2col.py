"""Im2col (cct/layers/im2col.py): shapes, forward against a direct gather written here, agreement with
Convolution's lowering, gradients for several pad/stride/dilation settings, batch partitions, errors."""
import numpy as np
import pytest

from cct import workspace
from cct.errors import NetError
from cct.layers.base import layer_class
from cct.layers.im2col import Im2colLayer
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker


def im2col_layer(params, shape, **kwargs):
    return make_layer('type: "Im2col" convolution_param { %s }' % params, [shape], **kwargs)


def gather_reference(x, kernel, stride, pad, dilation):
    """Row (c*kh + i)*kw + j of the output holds the input pixel under kernel offset (i, j)."""
    num, channels, height, width = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    out_h = (height + 2 * pad[0] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    out_w = (width + 2 * pad[1] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    out = np.empty((num, channels, kernel[0], kernel[1], out_h, out_w))
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            top, left = i * dilation[0], j * dilation[1]
            out[:, :, i, j] = padded[:, :, top:top + stride[0] * (out_h - 1) + 1:stride[0],
                                     left:left + stride[1] * (out_w - 1) + 1:stride[1]]
    return out.reshape(num, channels * kernel[0] * kernel[1], out_h, out_w)


SETTINGS = [
    ('kernel_size: 3', (2, 2, 4, 5), (3, 3), (1, 1), (0, 0), (1, 1)),
    ('kernel_size: 3 stride: 2 pad: 1', (2, 3, 5, 5), (3, 3), (2, 2), (1, 1), (1, 1)),
    ('kernel_size: 2 dilation: 2 pad: 1', (1, 2, 5, 4), (2, 2), (1, 1), (1, 1), (2, 2)),
    ('kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 2 pad_h: 0 pad_w: 1', (2, 2, 4, 5),
     (3, 2), (1, 2), (0, 1), (1, 1)),
    ('kernel_size: 2 kernel_size: 3 stride: 2 stride: 1 dilation: 1 dilation: 2', (1, 2, 5, 6),
     (2, 3), (2, 1), (0, 0), (1, 2)),
    # "Same" convolutions (stride 1, output as wide as the input): the contiguous-copy path.
    ('kernel_size: 5 pad: 2', (2, 3, 6, 7), (5, 5), (1, 1), (2, 2), (1, 1)),
    ('kernel_h: 3 kernel_w: 5 pad_h: 0 pad_w: 2 dilation: 1', (1, 2, 4, 3), (3, 5), (1, 1), (0, 2),
     (1, 1)),
    ('kernel_size: 3 pad: 2 dilation: 2', (2, 2, 5, 5), (3, 3), (1, 1), (2, 2), (2, 2)),
    ('kernel_size: 7 pad: 3', (1, 1, 2, 2), (7, 7), (1, 1), (3, 3), (1, 1)),
]


@pytest.mark.parametrize('params, shape, kernel, stride, pad, dilation', SETTINGS)
def test_forward_matches_gather_and_gradients(params, shape, kernel, stride, pad, dilation):
    layer, bottom, top = im2col_layer(params, shape, seed=1)
    layer.forward(bottom, top)
    expected = gather_reference(bottom[0].data, kernel, stride, pad, dilation)
    assert top[0].shape == expected.shape
    np.testing.assert_array_equal(top[0].data, expected)
    GradientChecker(1e-2, 1e-3).check(layer, bottom, top)


def test_shape_and_registration():
    # Caffe's TestSetup: (2, 3, 6, 5), kernel 3, stride 2 -> (2, 27, 2, 2).
    _, _, top = im2col_layer('kernel_size: 3 stride: 2', (2, 3, 6, 5))
    assert top[0].shape == (2, 27, 2, 2)
    assert layer_class('IM2COL') is Im2colLayer


def test_convolution_is_a_matrix_product_of_the_lowering():
    layer, bottom, top = im2col_layer('kernel_size: 3 stride: 2 pad: 1', (2, 3, 7, 6), seed=2)
    conv, conv_bottom, conv_top = make_layer(
        'type: "Convolution" convolution_param { num_output: 4 kernel_size: 3 stride: 2 pad: 1 '
        'bias_term: false weight_filler { type: "gaussian" } }', [(2, 3, 7, 6)],
        bottom_data=[bottom[0].data])
    layer.forward(bottom, top)
    conv.forward(conv_bottom, conv_top)
    weights = conv.blobs[0].data.reshape(4, -1)
    expected = np.einsum('ok,nkhw->nohw', weights, top[0].data)
    np.testing.assert_allclose(conv_top[0].data, expected, rtol=1e-12, atol=1e-12)


def test_backward_sums_overlapping_windows():
    layer, bottom, top = im2col_layer('kernel_size: 3 pad: 1', (1, 1, 4, 4))
    top[0].diff[...] = 1.0
    layer.backward(top, [True], bottom)
    # Each pixel is seen by as many windows as there are kernel offsets keeping it in range.
    coverage = np.array([2, 3, 3, 2])
    np.testing.assert_array_equal(bottom[0].diff[0, 0], np.outer(coverage, coverage))


def test_partitions_and_float32(monkeypatch):
    reference, bottom, top = im2col_layer('kernel_size: 2 stride: 1', (5, 2, 4, 4), seed=3)
    reference.forward(bottom, top)
    monkeypatch.setattr(workspace, 'LOWERING_BUDGET_BYTES', 2 * 8 * 9 * 4)
    split, bottom32, top32 = im2col_layer('kernel_size: 2 stride: 1', (5, 2, 4, 4),
                                          dtype=np.float32, bottom_data=[bottom[0].data])
    assert split.partition == 2
    split.forward(bottom32, top32)
    np.testing.assert_array_equal(top32[0].data, top[0].data.astype(np.float32))
    top32[0].diff[...] = top[0].data
    split.backward(top32, [True], bottom32)
    top[0].diff[...] = top[0].data
    reference.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom32[0].diff, bottom[0].diff, rtol=1e-6)


@pytest.mark.parametrize('params, shape, message', [
    ('kernel_size: 5', (1, 1, 3, 3), 'output would be empty'),
    ('stride: 2', (1, 1, 3, 3), 'kernel_size'),
    ('kernel_size: 2 kernel_size: 2 kernel_size: 2', (1, 1, 3, 3), 'once per spatial'),
    ('kernel_size: 2', (1, 3, 3), 'only 2-D'),
])
def test_errors(params, shape, message):
    with pytest.raises(NetError, match=message):
        im2col_layer(params, shape)
