"""Accelerator (OpenCL; CUDA where a GPU is) convolution (CcT partitions of the batch),
im2col/col2im, pooling and LRN primitives against the CPU device."""
import numpy as np
import pytest

from cct.devices import accelerator_ops
from cct.errors import DeviceError
from opencl_support import DTYPES, assert_close

# (num, channels, (h, w), out channels, group, kernel, pad, stride, dilation)
CONVOLUTIONS = [
    (3, 4, (7, 6), 6, 2, (3, 2), (1, 0), (2, 1), (1, 2)),
    (2, 3, (9, 8), 5, 1, (3, 3), (1, 1), (1, 1), (1, 1)),
    (2, 2, (5, 5), 4, 2, (1, 1), (0, 0), (1, 1), (1, 1)),
]


def _random(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _out_size(size, kernel, pad, stride, dilation):
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


def _plans(device, case, dtype):
    num, channels, hw, out_channels, group, kernel, pad, stride, dilation = case
    out_hw = tuple(_out_size(hw[i], kernel[i], pad[i], stride[i], dilation[i]) for i in range(2))
    return device.conv_plan(num, channels, hw, out_channels, out_hw, group, kernel, pad, stride,
                            dilation, dtype)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('case', CONVOLUTIONS)
@pytest.mark.parametrize('budget', [None, 1])
def test_convolution_matches_cpu(accel, each_gemm, cpu, monkeypatch, dtype, case, budget):
    if budget is not None:   # one image per column buffer: the partition loop runs num times
        monkeypatch.setattr(accelerator_ops, 'COLUMN_BUDGET', budget)
    num, channels, hw, out_channels, group = case[:5]
    cpu_plan, plan = _plans(cpu, case, dtype), _plans(accel, case, dtype)
    assert plan.partition == (1 if budget else num)
    images = _random((num, channels) + hw, dtype, 1)
    weights = _random((out_channels, plan.col_rows // group), dtype, 2)
    bias = _random(out_channels, dtype, 3)
    out = np.empty((num, out_channels, plan.col_pixels), dtype)
    cpu.conv_forward(cpu_plan, images, weights, bias, out)
    device_out = accel.empty(out.shape, dtype)
    accel.conv_forward(plan, accel.from_host(images), accel.from_host(weights), accel.from_host(bias),
                     device_out)
    assert_close(accel.to_host(device_out), out)

    rows = _random(out.shape, dtype, 4)
    image_bias = _random(channels, dtype, 5)
    for with_bias in (None, image_bias):   # Deconvolution's forward adds a bias per image channel
        back = np.empty_like(images)
        cpu.conv_backward_data(cpu_plan, rows, weights, with_bias, back)
        device_back = accel.from_host(np.full_like(images, np.nan))
        accel.conv_backward_data(plan, accel.from_host(rows), accel.from_host(weights),
                               None if with_bias is None else accel.from_host(with_bias),
                               device_back)
        assert_close(accel.to_host(device_back), back)

    weight_diff, bias_diff = _random(weights.shape, dtype, 6), _random(out_channels, dtype, 7)
    device_weight_diff, device_bias_diff = accel.from_host(weight_diff), accel.from_host(bias_diff)
    cpu.conv_backward_weights(cpu_plan, images, rows, weight_diff, bias_diff)
    accel.conv_backward_weights(plan, accel.from_host(images), accel.from_host(rows),
                              device_weight_diff, device_bias_diff)
    assert_close(accel.to_host(device_weight_diff), weight_diff)
    assert_close(accel.to_host(device_bias_diff), bias_diff)
    accel.conv_backward_weights(plan, accel.from_host(images), accel.from_host(rows), None, None)


@pytest.mark.parametrize('dtype', DTYPES)
def test_im2col_and_col2im_match_cpu(accel, cpu, dtype):
    case = CONVOLUTIONS[0]
    cpu_plan, plan = _plans(cpu, case, dtype), _plans(accel, case, dtype)
    images = _random((2, case[1]) + case[2], dtype, 8)
    col = np.empty((plan.col_rows, 2 * plan.col_pixels), dtype)
    cpu.im2col(cpu_plan, images, col)
    device_col = accel.empty(col.shape, dtype)
    accel.im2col(plan, accel.from_host(images), device_col)
    np.testing.assert_array_equal(accel.to_host(device_col), col)
    back = np.empty_like(images)
    cpu.col2im(cpu_plan, col, back)
    device_back = accel.empty(images.shape, dtype)
    accel.col2im(plan, device_col, device_back)
    assert_close(accel.to_host(device_back), back)


def test_convolution_group_mismatch_is_an_error(accel):
    with pytest.raises(DeviceError, match='group 2'):
        accel.conv_plan(1, 3, (4, 4), 4, (2, 2), 2, (3, 3), (0, 0), (1, 1), (1, 1), np.float32)


# (method, kernel, pad, stride, bottom shape)
POOLINGS = [
    ('max', (3, 3), (0, 0), (2, 2), (2, 3, 7, 7)),
    ('max', (3, 2), (1, 1), (2, 1), (2, 2, 6, 5)),
    ('ave', (3, 3), (1, 1), (2, 2), (2, 3, 7, 7)),
    ('ave', (2, 3), (0, 1), (1, 2), (1, 2, 5, 6)),
    ('stochastic_test', (3, 3), (0, 0), (2, 2), (2, 3, 7, 7)),
]


def _pool_top(kernel, pad, stride, shape):
    # Caffe's ceil rounding and its clip of a last window that would start in the padding.
    out = []
    for i in range(2):
        size = -(-(shape[2 + i] + 2 * pad[i] - kernel[i]) // stride[i]) + 1
        if pad[i] and (size - 1) * stride[i] >= shape[2 + i] + pad[i]:
            size -= 1
        out.append(size)
    return shape[:2] + tuple(out)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('method,kernel,pad,stride,shape', POOLINGS)
def test_pooling_matches_cpu(accel, cpu, dtype, method, kernel, pad, stride, shape):
    top_shape = _pool_top(kernel, pad, stride, shape)
    bottom = _random(shape, dtype, 9)
    if method.startswith('stochastic'):
        bottom = np.abs(bottom)
        bottom[0, 0, :3, :3] = 0   # a window that sums to 0 outputs 0
    bottom[0, 1, 0, :2] = bottom[0, 1, 0, 2]   # ties: Caffe keeps the first maximum
    cpu_plan = cpu.pool_plan(method, kernel, pad, stride, shape, top_shape, dtype)
    plan = accel.pool_plan(method, kernel, pad, stride, shape, top_shape, dtype)
    top = np.empty(top_shape, dtype)
    cpu.pool_forward(cpu_plan, bottom, top)
    device_bottom, device_top = accel.from_host(bottom), accel.empty(top_shape, dtype)
    accel.pool_forward(plan, device_bottom, device_top)
    assert_close(accel.to_host(device_top), top)
    if method == 'max':
        argmax, device_argmax = np.empty(top_shape, dtype), accel.empty(top_shape, dtype)
        cpu.pool_argmax(cpu_plan, argmax)
        accel.pool_argmax(plan, device_argmax)
        np.testing.assert_array_equal(accel.to_host(device_argmax), argmax)
    top_diff = _random(top_shape, dtype, 10)
    bottom_diff = np.empty_like(bottom)
    cpu.pool_backward(cpu_plan, top_diff, bottom_diff, bottom, top)
    device_diff = accel.from_host(np.full_like(bottom, np.nan))
    accel.pool_backward(plan, accel.from_host(top_diff), device_diff, device_bottom, device_top)
    assert_close(accel.to_host(device_diff), bottom_diff)


@pytest.mark.parametrize('dtype', DTYPES)
def test_stochastic_pooling_train_samples_by_value(accel, dtype):
    shape, kernel, stride = (2, 2, 6, 6), (3, 3), (3, 3)
    top_shape = (2, 2, 2, 2)
    bottom = np.abs(_random(shape, dtype, 11))
    bottom[0, 0, :3, :3] = 0
    bottom[0, 0, 1, 2] = 5   # the only positive value of its window: always chosen
    plan = accel.pool_plan('stochastic_train', kernel, (0, 0), stride, shape, top_shape, dtype)
    device_top = accel.empty(top_shape, dtype)
    accel.pool_forward(plan, accel.from_host(bottom), device_top)
    top, uniforms = accel.to_host(device_top), accel.to_host(plan.uniforms)
    # The inverse-CDF rule of cct's CPU kernel on the device's own draws.
    for n, c, ph, pw in np.ndindex(top_shape):
        window = bottom[n, c, ph * 3:ph * 3 + 3, pw * 3:pw * 3 + 3].reshape(-1)
        threshold = (1 - uniforms[n, c, ph, pw]) * window.sum(dtype=dtype)
        chosen = int(np.argmax(np.cumsum(window, dtype=dtype) >= threshold))
        assert top[n, c, ph, pw] == window[chosen]
    assert top[0, 0, 0, 0] == 5
    top_diff = _random(top_shape, dtype, 12)
    device_diff = accel.empty(shape, dtype)
    accel.pool_backward(plan, accel.from_host(top_diff), device_diff)
    diff = accel.to_host(device_diff)
    assert diff[0, 0, 1, 2] == top_diff[0, 0, 0, 0]
    assert np.count_nonzero(diff) == top_diff.size
    # Frequencies: a window of values 1, 2, 3 (and zeros) picks them 1:2:3.
    many = np.zeros((1, 1, 3, 3 * 2000), dtype)
    many[0, 0, 0, 0::3], many[0, 0, 1, 1::3], many[0, 0, 2, 2::3] = 1, 2, 3
    plan = accel.pool_plan('stochastic_train', kernel, (0, 0), stride, many.shape,
                         (1, 1, 1, 2000), dtype)
    device_top = accel.empty((1, 1, 1, 2000), dtype)
    accel.pool_forward(plan, accel.from_host(many), device_top)
    picked = accel.to_host(device_top).reshape(-1)
    for value, share in ((1, 1 / 6), (2, 2 / 6), (3, 3 / 6)):
        assert abs(np.mean(picked == value) - share) < 5 * np.sqrt(share * (1 - share) / 2000)


def test_stochastic_pooling_refuses_padding(accel):
    with pytest.raises(DeviceError, match='padding'):
        accel.pool_plan('stochastic_train', (2, 2), (1, 1), (2, 2), (1, 1, 4, 4), (1, 1, 3, 3),
                      np.float32)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('region,size', [('across', 5), ('across', 3), ('within', 3)])
def test_lrn_matches_cpu(accel, cpu, dtype, region, size):
    shape = (2, 7, 5, 4)
    real = np.dtype(dtype).type
    alpha, beta, k = (float(real(v)) for v in (1e-1, 0.75, 2.0))
    bottom = _random(shape, dtype, 13)
    cpu_plan = cpu.lrn_plan(region, size, alpha, beta, k, shape, dtype)
    plan = accel.lrn_plan(region, size, alpha, beta, k, shape, dtype)
    top = np.empty_like(bottom)
    cpu.lrn_forward(cpu_plan, bottom, top)
    device_bottom, device_top = accel.from_host(bottom), accel.empty(shape, dtype)
    accel.lrn_forward(plan, device_bottom, device_top)
    assert_close(accel.to_host(device_top), top)
    top_diff = _random(shape, dtype, 14)
    bottom_diff = np.empty_like(bottom)
    cpu.lrn_backward(cpu_plan, bottom, top, top_diff, bottom_diff)
    device_diff = accel.empty(shape, dtype)
    accel.lrn_backward(plan, device_bottom, device_top, accel.from_host(top_diff), device_diff)
    assert_close(accel.to_host(device_diff), bottom_diff)
