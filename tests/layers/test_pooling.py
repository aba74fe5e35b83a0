"""MAX and AVE Pooling (cct/layers/pooling.py, cct/kernels/pooling.pyx): Caffe's output sizes (ceil
rounding, last-window clipping, GoogLeNet's pools, global pooling), forward against naive window
loops written here (MAX over the clipped window, AVE's divisor counting padding inside the padded
extent), the argmax top, gradients, and Caffe's errors (Caffe's test_pooling_layer)."""
import numpy as np
import pytest

from cct.errors import NetError
from cct.layers.geometry import pool_out_size
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker


def pool_layer(params, shape, num_top=1, **kwargs):
    return make_layer('type: "Pooling" pooling_param { %s }' % params, [shape], num_top=num_top,
                      **kwargs)


def pool_reference(x, method, kernel, stride, pad, out_shape):
    """Caffe's CPU loops: MAX over the window clipped to the image (first maximum wins), AVE summing
    real pixels and dividing by the window clipped to [-pad, size + pad)."""
    num, channels, height, width = x.shape
    out_h, out_w = out_shape
    out = np.zeros((num, channels, out_h, out_w))
    argmax = np.zeros_like(out)
    for ph in range(out_h):
        for pw in range(out_w):
            h0, w0 = ph * stride[0] - pad[0], pw * stride[1] - pad[1]
            h1, w1 = min(h0 + kernel[0], height + pad[0]), min(w0 + kernel[1], width + pad[1])
            area = (h1 - h0) * (w1 - w0)
            rows = slice(max(h0, 0), min(h1, height))
            cols = slice(max(w0, 0), min(w1, width))
            window = x[:, :, rows, cols]
            if method == 'MAX':
                flat = window.reshape(num, channels, -1)
                best = flat.argmax(axis=2)
                out[:, :, ph, pw] = flat.max(axis=2)
                span = cols.stop - cols.start
                argmax[:, :, ph, pw] = (rows.start + best // span) * width + cols.start + best % span
            else:
                out[:, :, ph, pw] = window.sum(axis=(2, 3)) / area
    return out, argmax


@pytest.mark.parametrize('size, kernel, stride, pad, ceil_out, floor_out', [
    (6, 3, 2, 0, 3, 2),      # Caffe's test blob: ceil((6 - 3) / 2) + 1 = 3
    (112, 3, 2, 0, 56, 55),  # GoogLeNet pool1
    (56, 3, 2, 0, 28, 27),   # GoogLeNet pool2
    (28, 3, 2, 0, 14, 13),   # GoogLeNet pool3
    (14, 3, 2, 0, 7, 6),     # GoogLeNet pool4
    (28, 3, 1, 1, 28, 28),   # inception pools
    (55, 3, 2, 0, 27, 27),   # CaffeNet pool1
    (13, 3, 2, 0, 6, 6),     # CaffeNet pool5
    (32, 3, 2, 0, 16, 15),   # CIFAR-10
    (3, 2, 2, 1, 2, 2),      # clipping: the ceil'd third window would start in the padding
    (5, 2, 2, 1, 3, 3),
    (4, 3, 3, 1, 2, 2),
])
def test_output_size_rounding_and_clipping(size, kernel, stride, pad, ceil_out, floor_out):
    assert pool_out_size(size, kernel, stride, pad) == ceil_out
    assert pool_out_size(size, kernel, stride, pad, ceil_mode=False) == floor_out


def test_clipping_drops_a_window_entirely_in_the_padding():
    """size 3, kernel 2, stride 2, pad 1: ceil rounding gives 3 windows, but the third would start
    at 2 * 2 - 1 = 3, past the image, so Caffe drops it ((out - 1) * stride >= size + pad)."""
    layer, bottom, top = pool_layer('pool: MAX kernel_size: 2 stride: 2 pad: 1', (1, 1, 3, 3))
    assert top[0].shape == (1, 1, 2, 2)


PARAMS = [
    # (params, shape, method, kernel, stride, pad)
    ('pool: MAX kernel_size: 3 stride: 2', (2, 3, 6, 5), 'MAX', (3, 3), (2, 2), (0, 0)),
    ('pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1', (2, 2, 6, 5), 'MAX', (3, 2),
     (2, 1), (0, 0)),
    ('pool: MAX kernel_size: 3 stride: 2 pad: 1', (2, 2, 5, 6), 'MAX', (3, 3), (2, 2), (1, 1)),
    ('pool: MAX kernel_size: 2 stride: 2 pad_h: 1 pad_w: 0', (1, 2, 5, 4), 'MAX', (2, 2), (2, 2),
     (1, 0)),
    ('pool: AVE kernel_size: 3 stride: 2', (2, 3, 6, 5), 'AVE', (3, 3), (2, 2), (0, 0)),
    ('pool: AVE kernel_size: 3 stride: 1 pad: 1', (2, 2, 4, 5), 'AVE', (3, 3), (1, 1), (1, 1)),
    ('pool: AVE kernel_size: 3 stride: 2 pad: 1', (1, 2, 6, 6), 'AVE', (3, 3), (2, 2), (1, 1)),
    ('pool: AVE kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 1', (1, 2, 4, 5),
     'AVE', (2, 3), (1, 2), (1, 1)),
]


@pytest.mark.parametrize('params, shape, method, kernel, stride, pad', PARAMS)
def test_forward_matches_naive_windows_and_gradients(params, shape, method, kernel, stride, pad):
    layer, bottom, top = pool_layer(params, shape, seed=2)
    out_shape = tuple(pool_out_size(shape[2 + i], kernel[i], stride[i], pad[i]) for i in range(2))
    assert top[0].shape == shape[:2] + out_shape
    layer.forward(bottom, top)
    expected, _ = pool_reference(bottom[0].data, method, kernel, stride, pad, out_shape)
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-12)
    GradientChecker(1e-4, 1e-2).check(layer, bottom, top)


def test_max_second_top_is_the_argmax():
    layer, bottom, top = pool_layer('pool: MAX kernel_size: 3 stride: 2 pad: 1', (2, 2, 5, 6),
                                    num_top=2, seed=8)
    assert top[1].shape == top[0].shape
    layer.forward(bottom, top)
    assert top[0].shape == (2, 2, 3, 4)
    _, argmax = pool_reference(bottom[0].data, 'MAX', (3, 3), (2, 2), (1, 1), (3, 4))
    np.testing.assert_array_equal(top[1].data, argmax)


@pytest.mark.parametrize('side, index_type', [(200, np.uint16), (256, np.int32)])
def test_argmax_indices_of_large_planes(side, index_type):
    """Planes under 65535 pixels keep 16-bit argmaxes, larger ones 32-bit; either way the
    argmax top and the gradient's route are the exact flat indices (above 32767 too), and a window
    with no maximum (all -inf) reads -1 as in Caffe."""
    x = np.random.default_rng(2).standard_normal((1, 1, side, side))
    x[0, 0, :2, :2] = -np.inf
    layer, bottom, top = pool_layer('pool: MAX kernel_size: 2 stride: 2', x.shape, num_top=2,
                                    bottom_data=[x])
    layer.forward(bottom, top)
    assert layer.mask.dtype == index_type
    _, argmax = pool_reference(x, 'MAX', (2, 2), (2, 2), (0, 0), (side // 2, side // 2))
    argmax[0, 0, 0, 0] = -1
    np.testing.assert_array_equal(top[1].data, argmax)
    assert top[1].data.max() > 32767
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    expected = np.zeros(side * side)
    expected[argmax.ravel()[1:].astype(int)] = 1
    np.testing.assert_array_equal(bottom[0].diff.ravel(), expected)


def test_max_ties_keep_the_first_and_route_the_gradient_there():
    x = np.ones((1, 1, 2, 2))
    layer, bottom, top = pool_layer('pool: MAX kernel_size: 2', x.shape, num_top=2,
                                    bottom_data=[x])
    layer.forward(bottom, top)
    assert top[1].data.ravel().tolist() == [0]
    top[0].diff[...] = 3
    layer.backward(top, [True], bottom)
    assert bottom[0].diff.ravel().tolist() == [3, 0, 0, 0]


def test_ave_divisor_counts_padding_inside_the_padded_extent():
    """Caffe's TestForwardAve: a 3x3 plane of ones, kernel 3, stride 1, pad 1."""
    x = np.ones((1, 1, 3, 3))
    layer, bottom, top = pool_layer('pool: AVE kernel_size: 3 stride: 1 pad: 1', x.shape,
                                    bottom_data=[x])
    layer.forward(bottom, top)
    np.testing.assert_allclose(top[0].data[0, 0], np.array([[4, 6, 4], [6, 9, 6], [4, 6, 4]]) / 9)


def test_ave_divisor_stops_at_the_padded_extent():
    """A ceil'd last window reaching past size + pad divides only by its part inside the extent."""
    x = np.ones((1, 1, 4, 4))
    layer, bottom, top = pool_layer('pool: AVE kernel_size: 3 stride: 2 pad: 1', x.shape,
                                    bottom_data=[x])
    assert top[0].shape == (1, 1, 3, 3)   # ceil((4 + 2 - 3) / 2) + 1
    layer.forward(bottom, top)
    # Window starts -1, 1, 3: the last spans [3, 6) clipped to [3, 5) (2 cells, one real).
    np.testing.assert_allclose(top[0].data[0, 0, 0], [4 / 9, 6 / 9, 2 / 6])
    np.testing.assert_allclose(top[0].data[0, 0, 2], [2 / 6, 3 / 6, 1 / 4])


@pytest.mark.parametrize('method', ['MAX', 'AVE'])
def test_global_pooling(method):
    layer, bottom, top = pool_layer('pool: %s global_pooling: true' % method, (2, 3, 4, 5),
                                    seed=6)
    assert top[0].shape == (2, 3, 1, 1)
    layer.forward(bottom, top)
    reduce = np.max if method == 'MAX' else np.mean
    np.testing.assert_allclose(top[0].data[:, :, 0, 0], reduce(bottom[0].data, axis=(2, 3)))
    GradientChecker(1e-4, 1e-2).check(layer, bottom, top)
    bottom[0].reshape(2, 3, 7, 6)
    layer.reshape(bottom, top)
    assert top[0].shape == (2, 3, 1, 1)   # the kernel follows the input on reshape


def test_floor_round_mode():
    _, _, top = pool_layer('pool: MAX kernel_size: 3 stride: 2 round_mode: FLOOR', (1, 1, 6, 6))
    assert top[0].shape == (1, 1, 2, 2)


def test_float32_path():
    x = np.random.default_rng(1).standard_normal((2, 3, 7, 7))
    layer, bottom, top = pool_layer('pool: AVE kernel_size: 3 stride: 2 pad: 1', x.shape,
                                    bottom_data=[x], dtype=np.float32)
    layer.forward(bottom, top)
    expected, _ = pool_reference(x, 'AVE', (3, 3), (2, 2), (1, 1), top[0].shape[2:])
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('params, shape, message', [
    ('pool: MAX', (1, 1, 4, 4), 'needs kernel_size, or both kernel_h and kernel_w'),
    ('pool: MAX kernel_size: 2 kernel_h: 2 kernel_w: 2', (1, 1, 4, 4), 'not both'),
    ('pool: MAX global_pooling: true kernel_size: 2', (1, 1, 4, 4),
     'global_pooling: true filter size cannot be specified'),
    ('pool: AVE global_pooling: true stride: 2', (1, 1, 4, 4), 'only pad = 0 and stride = 1'),
    ('pool: MAX kernel_size: 2 pad: 2', (1, 1, 4, 4), 'pad .2, 2. must be smaller than the kernel'),
    ('pool: STOCHASTIC kernel_size: 2 pad: 1', (1, 1, 4, 4),
     'padding implemented only for average and max pooling'),
    ('pool: MAX kernel_size: 2', (1, 4, 4), 'needs a 4-D input'),
])
def test_errors(params, shape, message):
    with pytest.raises(NetError, match=message):
        pool_layer(params, shape)


def test_second_top_only_for_max():
    with pytest.raises(NetError, match='only produced by MAX pooling'):
        pool_layer('pool: AVE kernel_size: 2', (1, 1, 4, 4), num_top=2)


@pytest.mark.parametrize('params, shape', [
    ('pool: MAX kernel_size: 3 stride: 2', (4, 16, 27, 27)),            # AlexNet pool1/2-like
    ('pool: MAX kernel_size: 3 stride: 1 pad: 1', (2, 32, 14, 14)),      # GoogLeNet inception
    ('pool: AVE kernel_size: 3 stride: 2 pad: 1', (4, 16, 14, 14)),
    ('pool: AVE kernel_size: 7 stride: 1', (4, 64, 7, 7)),               # GoogLeNet pool5
])
def test_directional_gradient_at_a_realistic_size(params, shape):
    layer, bottom, top = pool_layer(params, shape, seed=12)
    # Continuous random data: a step of 1e-4 along a unit direction moves no maximum.
    GradientChecker(1e-4, 1e-3).check_directional(layer, bottom, top, directions=3)


def caffe_loops(x, method, kernel, stride, pad, out_shape):
    """Caffe's CPU loops one value at a time (sums in x's precision and Caffe's order, strict '>'
    from -FLT_MAX), for comparisons that must be exact."""
    height, width = x.shape[2:]
    out = np.zeros(x.shape[:2] + out_shape)
    argmax = np.full(out.shape, -1)
    for n, c, ph, pw in np.ndindex(*out.shape):
        h0, w0 = ph * stride[0] - pad[0], pw * stride[1] - pad[1]
        h1, w1 = min(h0 + kernel[0], height + pad[0]), min(w0 + kernel[1], width + pad[1])
        area = (h1 - h0) * (w1 - w0)
        best, total = -np.finfo(np.float32).max, x.dtype.type(0)
        for h in range(max(h0, 0), min(h1, height)):
            for w in range(max(w0, 0), min(w1, width)):
                if method == 'MAX' and x[n, c, h, w] > best:
                    best, argmax[n, c, ph, pw] = x[n, c, h, w], h * width + w
                elif method == 'AVE':
                    total += x[n, c, h, w]
        out[n, c, ph, pw] = best if method == 'MAX' else total / area
    return out, argmax


@pytest.mark.parametrize('dtype', [np.float64, np.float32])
@pytest.mark.parametrize('method', ['MAX', 'AVE'])
@pytest.mark.parametrize('kernel, stride, pad', [((3, 3), (2, 2), (1, 1)), ((3, 3), (1, 1), (1, 1)),
                                                 ((2, 4), (1, 3), (0, 2)), ((3, 3), (2, 2), (0, 0)),
                                                 ((2, 2), (2, 2), (0, 0))])
def test_wide_rows_are_exactly_caffes_loops(method, kernel, stride, pad, dtype):
    """Rows wide enough for the kernels' several-windows-at-a-time paths (eight vector lanes for
    float with stride 2, four otherwise) and their borders: values, argmax (ties, NaN, -inf
    included) and AVE's gradient equal Caffe's loops bit for bit."""
    x = np.round(np.random.default_rng(5).standard_normal((2, 2, 7, 29)) * 2)   # many ties
    x[0, 0, 1, 3:9] = np.nan
    x[1, 1, 2:5, :] = -np.inf
    x[1, 0, 3, 5:12] = -np.finfo(np.float32).max   # never beats the start value
    if method == 'AVE':
        x = np.random.default_rng(6).standard_normal(x.shape)
    x = x.astype(dtype)
    params = 'pool: %s kernel_h: %d kernel_w: %d stride_h: %d stride_w: %d pad_h: %d pad_w: %d' % (
        (method,) + kernel + stride + pad)
    layer, bottom, top = pool_layer(params, x.shape, num_top=2 if method == 'MAX' else 1,
                                    bottom_data=[x], dtype=dtype)
    layer.forward(bottom, top)
    out_shape = top[0].shape[2:]
    expected, argmax = caffe_loops(x, method, kernel, stride, pad, out_shape)
    assert np.array_equal(top[0].data, expected, equal_nan=True)
    if method == 'MAX':
        assert np.array_equal(top[1].data, argmax)
    else:
        # Caffe's backward: each window's share added pixel by pixel, windows in order.
        top[0].diff[...] = np.random.default_rng(7).standard_normal(top[0].shape)
        layer.backward(top, [True], bottom)
        grad = np.zeros_like(x)
        height, width = x.shape[2:]
        for n, c, ph, pw in np.ndindex(*top[0].shape):
            h0, w0 = ph * stride[0] - pad[0], pw * stride[1] - pad[1]
            h1, w1 = min(h0 + kernel[0], height + pad[0]), min(w0 + kernel[1], width + pad[1])
            share = top[0].diff[n, c, ph, pw] / ((h1 - h0) * (w1 - w0))
            for h in range(max(h0, 0), min(h1, height)):
                for w in range(max(w0, 0), min(w1, width)):
                    grad[n, c, h, w] += share
        assert np.array_equal(bottom[0].diff, grad)
