"""Accelerator (OpenCL; CUDA where a GPU is) convolution over random geometries against a direct
convolution written here: forward, data gradient (with an image-side bias, Deconvolution's forward)
and weight/bias gradients, padding and dilation wider than the input included, every array a view
inside a guarded buffer (guards must survive) and partitions of one image or of the whole batch."""
import numpy as np
import pytest

from cct.devices import accelerator_ops
from opencl_support import assert_close

GUARD = 17
SENTINEL = -7777.25


def _out_size(size, kernel, stride, pad, dilation):
    return (size + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


def _taps(kernel, stride, dilation, out_hw):
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            yield (i, j, slice(i * dilation[0], i * dilation[0] + stride[0] * (out_hw[0] - 1) + 1,
                               stride[0]),
                   slice(j * dilation[1], j * dilation[1] + stride[1] * (out_hw[1] - 1) + 1,
                         stride[1]))


def direct(x, w, dy, stride, pad, dilation, group):
    """(y, dx, dw) of the convolution of x by w (no bias), dy the top gradient."""
    num, channels, height, width = x.shape
    outputs, per_group, kh, kw = w.shape
    out_hw = dy.shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    y, dw = np.zeros((num, outputs) + out_hw), np.zeros(w.shape)
    dpadded = np.zeros_like(padded)
    per_out = outputs // group
    for g in range(group):
        ins, outs = slice(g * per_group, (g + 1) * per_group), slice(g * per_out, (g + 1) * per_out)
        for i, j, rows, cols in _taps((kh, kw), stride, dilation, out_hw):
            y[:, outs] += np.einsum('nchw,oc->nohw', padded[:, ins, rows, cols], w[outs, :, i, j])
            dpadded[:, ins, rows, cols] += np.einsum('nohw,oc->nchw', dy[:, outs],
                                                     w[outs, :, i, j])
            dw[outs, :, i, j] = np.einsum('nchw,nohw->oc', padded[:, ins, rows, cols], dy[:, outs])
    return y, dpadded[:, :, pad[0]:pad[0] + height, pad[1]:pad[1] + width], dw


def random_geometry(seed):
    rng = np.random.default_rng(seed)
    while True:
        group = int(rng.choice([1, 1, 2, 3]))
        channels, outputs = group * int(rng.integers(1, 4)), group * int(rng.integers(1, 4))
        kernel = tuple(int(k) for k in rng.integers(1, 6, size=2))
        stride = tuple(int(s) for s in rng.choice([1, 1, 2, 3], size=2))
        size = tuple(int(s) for s in rng.integers(1, 11, size=2))
        if rng.random() < 1 / 3:   # padding and dilation wider than the input
            dilation = tuple(int(d) for d in rng.integers(1, 2 * max(size) + 2, size=2))
            pad = tuple(int(rng.integers(size[a], size[a] + dilation[a] * (kernel[a] - 1) + 2))
                        for a in range(2))
        else:
            dilation = tuple(int(d) for d in rng.choice([1, 1, 2, 3], size=2))
            pad = tuple(int(p) for p in rng.integers(0, 4, size=2))
        out = tuple(_out_size(size[a], kernel[a], stride[a], pad[a], dilation[a]) for a in range(2))
        if min(out) > 0 and max(out) <= 40:
            num = int(rng.integers(1, 4))
            return num, channels, size, outputs, group, kernel, pad, stride, dilation, out


class Guarded:
    """A device array of ``shape`` living at offset GUARD inside a buffer of sentinels."""

    def __init__(self, device, values):
        self.device, self.host = device, np.asarray(values, np.float64)
        whole = np.full(self.host.size + 2 * GUARD, SENTINEL)
        whole[GUARD:-GUARD] = self.host.reshape(-1)
        self.buffer = device.from_host(whole)
        self.array = self.buffer[GUARD:GUARD + self.host.size].reshape(self.host.shape)

    def value(self):
        whole = self.device.to_host(self.buffer)
        assert np.all(whole[:GUARD] == SENTINEL) and np.all(whole[-GUARD:] == SENTINEL), \
            'a kernel wrote outside its array'
        return whole[GUARD:-GUARD].reshape(self.host.shape)


@pytest.mark.parametrize('seed', range(24))
def test_random_geometry_matches_direct_convolution(accel, each_gemm, monkeypatch, seed):
    num, channels, size, outputs, group, kernel, pad, stride, dilation, out = random_geometry(seed)
    if seed % 2:   # one image per column buffer
        monkeypatch.setattr(accelerator_ops, 'COLUMN_BUDGET', 1)
    rng = np.random.default_rng(1000 + seed)
    x = rng.standard_normal((num, channels) + size)
    w = rng.standard_normal((outputs, channels // group) + kernel)
    dy = rng.standard_normal((num, outputs) + out)
    bias, image_bias = rng.standard_normal(outputs), rng.standard_normal(channels)
    y, dx, dw = direct(x, w, dy, stride, pad, dilation, group)
    plan = accel.conv_plan(num, channels, size, outputs, out, group, kernel, pad, stride, dilation,
                         np.float64)
    images, weights = Guarded(accel, x), Guarded(accel, w.reshape(outputs, -1))
    top = Guarded(accel, np.full((num, outputs, out[0] * out[1]), np.nan))
    device_bias = Guarded(accel, bias)
    accel.conv_forward(plan, images.array, weights.array, device_bias.array, top.array)
    expected = y + bias[None, :, None, None]
    assert_close(top.value(), expected.reshape(top.host.shape))
    rows = Guarded(accel, dy.reshape(num, outputs, -1))
    back = Guarded(accel, np.full(x.shape, np.nan))
    device_image_bias = Guarded(accel, image_bias)
    accel.conv_backward_data(plan, rows.array, weights.array, device_image_bias.array, back.array)
    assert_close(back.value(), dx + image_bias[None, :, None, None])
    weight_diff, bias_diff = Guarded(accel, np.ones(weights.host.shape)), Guarded(accel, np.ones(outputs))
    accel.conv_backward_weights(plan, images.array, rows.array, weight_diff.array, bias_diff.array)
    assert_close(weight_diff.value(), 1 + dw.reshape(outputs, -1))
    assert_close(bias_diff.value(), 1 + dy.sum(axis=(0, 2, 3)))
    images.value(), weights.value(), rows.value()   # inputs' guards intact too
