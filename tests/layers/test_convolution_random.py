"""Convolution and Deconvolution under every lowering (full, rows, panels, auto) over random
geometries against a direct convolution written here: forward, data gradient and weight/bias
gradients, with guard values around every buffer a kernel touches (blobs and scratch).

Random kernel, stride, pad, dilation, group, batch and plane sizes, padding and dilation larger than
the input included: a "same" row lowering once cleared columns outside its row there, over other
taps' and images' values, and returned outputs off by up to 5 without a word. Depthwise layers
(group == the image side's channels, channel multipliers above 1 too) run the same checks through
the direct kernels (cct/kernels/depthwise.pyx) that the 'auto' policy gives them.
"""
import collections
import zlib

import numpy as np
import pytest

from cct import workspace
from cct.layers.geometry import conv_out_size, deconv_out_size
from cct.testing import make_layer

GUARD = 64                  # values of guard on each side of every buffer
SENTINEL = -7777.25         # what the guards hold (and must still hold afterwards)
LOWERINGS = ['full', 'rows', 'panels', 'auto']


# ------------------------------------------------------------------ the direct convolution
def _taps(shape, kernel, stride, pad, dilation, out_hw):
    """(i, j, slices of the padded input that tap (i, j) reads for every output pixel)."""
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (out_hw[0] - 1) + 1,
                         stride[0])
            cols = slice(j * dilation[1], j * dilation[1] + stride[1] * (out_hw[1] - 1) + 1,
                         stride[1])
            yield i, j, rows, cols


def _padded(x, pad):
    return np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))


def conv_forward(x, w, stride, pad, dilation, group):
    """y[n, o] = sum over o's group channels and the kernel taps of w * padded x (no bias)."""
    num, _, height, width = x.shape
    outputs, per_group, kh, kw = w.shape
    out_hw = tuple(conv_out_size(s, k, st, p, d) for s, k, st, p, d in
                   zip((height, width), (kh, kw), stride, pad, dilation))
    padded = _padded(x, pad)
    y = np.zeros((num, outputs) + out_hw)
    per_out = outputs // group
    for g in range(group):
        ins, outs = slice(g * per_group, (g + 1) * per_group), slice(g * per_out, (g + 1) * per_out)
        for i, j, rows, cols in _taps(x.shape, (kh, kw), stride, pad, dilation, out_hw):
            y[:, outs] += np.einsum('nchw,oc->nohw', padded[:, ins, rows, cols], w[outs, :, i, j])
    return y


def conv_backward_data(dy, w, x_shape, stride, pad, dilation, group):
    """The adjoint of ``conv_forward`` in x: dx for top gradient dy."""
    outputs, per_group, kh, kw = w.shape
    num, channels, height, width = x_shape
    padded = np.zeros((num, channels, height + 2 * pad[0], width + 2 * pad[1]))
    per_out = outputs // group
    for g in range(group):
        ins, outs = slice(g * per_group, (g + 1) * per_group), slice(g * per_out, (g + 1) * per_out)
        for i, j, rows, cols in _taps(x_shape, (kh, kw), stride, pad, dilation, dy.shape[2:]):
            padded[:, ins, rows, cols] += np.einsum('nohw,oc->nchw', dy[:, outs],
                                                    w[outs, :, i, j])
    return padded[:, :, pad[0]:pad[0] + height, pad[1]:pad[1] + width]


def conv_backward_weights(x, dy, w_shape, stride, pad, dilation, group):
    """The adjoint of ``conv_forward`` in w: dw for input x and top gradient dy."""
    outputs, per_group, kh, kw = w_shape
    padded = _padded(x, pad)
    dw = np.zeros(w_shape)
    per_out = outputs // group
    for g in range(group):
        ins, outs = slice(g * per_group, (g + 1) * per_group), slice(g * per_out, (g + 1) * per_out)
        for i, j, rows, cols in _taps(x.shape, (kh, kw), stride, pad, dilation, dy.shape[2:]):
            dw[outs, :, i, j] = np.einsum('nchw,nohw->oc', padded[:, ins, rows, cols],
                                          dy[:, outs])
    return dw


# ------------------------------------------------------------------ random geometries
Case = collections.namedtuple('Case', 'kind params shape kernel stride pad dilation group dtype')


def _params(outputs, kernel, stride, pad, dilation, group, bias):
    """The convolution_param text of one drawn geometry."""
    return ('num_output: %d kernel_h: %d kernel_w: %d stride_h: %d stride_w: %d pad_h: %d '
            'pad_w: %d dilation: %d dilation: %d group: %d %s'
            % (outputs, kernel[0], kernel[1], stride[0], stride[1], pad[0], pad[1],
               dilation[0], dilation[1], group, bias))


def random_case(seed):
    """One random layer: (layer type, prototxt params, bottom shape, stride, pad, dilation, group,
    dtype). A third of the cases pad and dilate wider than the input; every case has a
    non-empty output."""
    rng = np.random.default_rng(seed)
    while True:
        kind = 'Deconvolution' if rng.random() < 0.25 else 'Convolution'
        group = int(rng.choice([1, 1, 2, 3]))
        channels = group * int(rng.integers(1, 4))
        outputs = group * int(rng.integers(1, 4))
        kernel = tuple(int(k) for k in rng.integers(1, 6, size=2))
        stride = tuple(int(s) for s in rng.choice([1, 1, 1, 2, 3], size=2))
        size = tuple(int(s) for s in rng.integers(1, 13, size=2))
        draw = rng.random()
        if draw < 1 / 6:    # "same" convolutions (stride 1) padded and dilated wider than the input
            kernel = tuple(int(k) for k in rng.choice([3, 5], size=2))
            stride = (1, 1)
            dilation = tuple(int(rng.integers(2 * size[a] // (kernel[a] - 1) + 1,
                                              2 * size[a] + 2)) for a in range(2))
            pad = tuple(dilation[a] * (kernel[a] - 1) // 2 for a in range(2))
        elif draw < 1 / 3:    # padding and dilation wider than the input
            dilation = tuple(int(d) for d in rng.integers(1, 2 * max(size) + 2, size=2))
            pad = tuple(int(rng.integers(size[a], size[a] + dilation[a] * (kernel[a] - 1) + 2))
                        for a in range(2))
        else:
            dilation = tuple(int(d) for d in rng.choice([1, 1, 2, 3], size=2))
            pad = tuple(int(p) for p in rng.integers(0, 4, size=2))
        if kind == 'Convolution':
            out = [conv_out_size(size[a], kernel[a], stride[a], pad[a], dilation[a])
                   for a in range(2)]
        else:
            out = [deconv_out_size(size[a], kernel[a], stride[a], pad[a], dilation[a])
                   for a in range(2)]
        if min(out) <= 0 or max(out) > 48:
            continue
        num = int(rng.integers(1, 5))
        dtype = np.float32 if rng.random() < 0.4 else np.float64
        bias = 'bias_term: false' if rng.random() < 0.2 else ''
        params = _params(outputs, kernel, stride, pad, dilation, group, bias)
        return Case(kind, params, (num, channels) + size, kernel, stride, pad, dilation, group,
                    dtype)


def random_depthwise_case(seed):
    """One random depthwise layer: group == the image side's channels (Convolution: its input;
    Deconvolution: its num_output), each group feeding 1-3 channels of the other side. Half the
    cases are MobileNet's 3x3 (stride 1 or 2); a quarter pad or dilate wider than the input."""
    rng = np.random.default_rng(10_000 + seed)
    while True:
        kind = 'Deconvolution' if rng.random() < 0.25 else 'Convolution'
        group = int(rng.integers(2, 6))
        multiplier = int(rng.choice([1, 1, 2, 3]))
        size = tuple(int(s) for s in rng.integers(1, 15, size=2))
        draw = rng.random()
        if draw < 0.5:
            kernel, stride = (3, 3), (int(rng.choice([1, 2])),) * 2
            dilation = (int(rng.choice([1, 1, 2])),) * 2
            pad = (int(rng.choice([0, 1, 1, 2])),) * 2
        else:
            kernel = tuple(int(k) for k in rng.integers(1, 6, size=2))
            stride = tuple(int(s) for s in rng.choice([1, 1, 2, 3], size=2))
            dilation = tuple(int(d) for d in rng.choice([1, 1, 2, 3], size=2))
            pad = tuple(int(p) for p in rng.integers(0, 4, size=2))
            if draw > 0.75:    # padding (and dilation) wider than the input
                dilation = tuple(int(d) for d in rng.integers(1, 2 * max(size) + 2, size=2))
                pad = tuple(int(rng.integers(size[a], size[a] + dilation[a] * (kernel[a] - 1) +
                                             2)) for a in range(2))
        out_size = conv_out_size if kind == 'Convolution' else deconv_out_size
        out = [out_size(size[a], kernel[a], stride[a], pad[a], dilation[a]) for a in range(2)]
        if min(out) <= 0 or max(out) > 48:
            continue
        channels, outputs = ((group, group * multiplier) if kind == 'Convolution'
                             else (group * multiplier, group))
        dtype = np.float32 if rng.random() < 0.4 else np.float64
        bias = 'bias_term: false' if rng.random() < 0.2 else ''
        params = _params(outputs, kernel, stride, pad, dilation, group, bias)
        num = int(rng.integers(1, 5))
        return Case(kind, params, (num, channels) + size, kernel, stride, pad, dilation, group,
                    dtype)


# The cases the bug was reported with (kernel 3, dilation and pad wider than the plane).
REPORTED = [Case('Convolution', 'num_output: 2 kernel_size: 3 dilation: %d pad: %d' % (d, d),
                 (4, 3, s, s), (3, 3), (1, 1), (d, d), (d, d), 1, np.float64)
            for s, d in [(5, 6), (10, 12), (20, 24)]]


# ------------------------------------------------------------------ guarded buffers
class Guards:
    """Buffers with ``GUARD`` sentinel values on each side; ``check`` says which were written."""

    def __init__(self):
        self.buffers = []

    def flat(self, name, count, dtype, fill):
        whole = np.full(count + 2 * GUARD, SENTINEL, dtype)
        whole[GUARD:GUARD + count] = fill
        self.buffers.append((name, whole, count))
        return whole[GUARD:GUARD + count]

    def check(self, when):
        for name, whole, count in self.buffers:
            for side, guard in (('before', whole[:GUARD]), ('after', whole[GUARD + count:])):
                assert (guard == SENTINEL).all(), (
                    '%s: a kernel wrote %s the buffer %r (%d values)' % (when, side, name, count))


def guard_blob_data(guards, name, blob, values):
    blob.use_data_buffer(guards.flat(name + '.data', blob.count, blob.dtype, values.reshape(-1)))


def guard_blob_diff(guards, name, blob, values):
    blob.use_diff_buffer(guards.flat(name + '.diff', blob.count, blob.dtype, values.reshape(-1)))


@pytest.fixture
def guarded_scratch(monkeypatch):
    """Every scratch buffer fresh, full of NaN (its contents are undefined: a kernel that reads
    before it writes shows up in the results) and guarded."""
    guards = Guards()

    def scratch(purpose, shape, dtype):
        count = int(np.prod(shape, dtype=np.int64))
        return guards.flat('scratch ' + purpose, count, np.dtype(dtype), np.nan).reshape(shape)

    monkeypatch.setattr(workspace, 'scratch', scratch)
    return guards


def run_case(case, lowering, guards, monkeypatch):
    kind, params, shape, _, stride, pad, dilation, group, dtype = case
    monkeypatch.setattr(workspace, 'LOWERING', lowering)
    layer, bottom, top = make_layer(
        'type: "%s" convolution_param { %s weight_filler { type: "gaussian" std: 0.5 } '
        'bias_filler { type: "gaussian" } }' % (kind, params), [shape], dtype=dtype)
    rng = np.random.default_rng(zlib.crc32(repr((params, shape)).encode()))
    x = rng.standard_normal(shape)
    w = layer.blobs[0].data.astype(np.float64)
    bias = layer.blobs[1].data.astype(np.float64) if len(layer.blobs) == 2 else None
    top_shape = top[0].shape
    dy = rng.standard_normal(top_shape)
    old_dw = rng.standard_normal(w.shape)
    old_db = rng.standard_normal(bias.shape) if bias is not None else None

    # Convolution's top is conv(x); Deconvolution's is the adjoint of the convolution that maps
    # its top's shape to its bottom's (with the same weights).
    if kind == 'Convolution':
        expected_top = conv_forward(x, w, stride, pad, dilation, group)
        expected_dx = conv_backward_data(dy, w, shape, stride, pad, dilation, group)
        expected_dw = conv_backward_weights(x, dy, w.shape, stride, pad, dilation, group)
    else:
        expected_top = conv_backward_data(x, w, top_shape, stride, pad, dilation, group)
        expected_dx = conv_forward(dy, w, stride, pad, dilation, group)
        expected_dw = conv_backward_weights(dy, x, w.shape, stride, pad, dilation, group)
    if bias is not None:
        expected_top = expected_top + bias[None, :, None, None]

    guard_blob_data(guards, 'bottom', bottom[0], x)
    guard_blob_diff(guards, 'bottom', bottom[0], np.full(shape, np.nan))
    guard_blob_data(guards, 'top', top[0], np.full(top_shape, np.nan))
    guard_blob_diff(guards, 'top', top[0], dy)
    for index, (blob, old) in enumerate(zip(layer.blobs, (old_dw, old_db))):
        guard_blob_data(guards, 'param %d' % index, blob, blob.data.copy())
        guard_blob_diff(guards, 'param %d' % index, blob, old)

    tol = dict(rtol=1e-9, atol=1e-9) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-4)
    layer.forward(bottom, top)
    guards.check('forward')
    np.testing.assert_allclose(top[0].data, expected_top, **tol, err_msg='forward')
    layer.backward(top, [True], bottom)
    guards.check('backward')
    np.testing.assert_allclose(bottom[0].diff, expected_dx, **tol, err_msg='data gradient')
    np.testing.assert_allclose(layer.blobs[0].diff, old_dw + expected_dw, **tol,
                               err_msg='weight gradient')
    if bias is not None:
        np.testing.assert_allclose(layer.blobs[1].diff, old_db + dy.sum(axis=(0, 2, 3)), **tol,
                                   err_msg='bias gradient')
    np.testing.assert_array_equal(bottom[0].data, x.astype(dtype), err_msg='bottom changed')
    return layer


@pytest.mark.parametrize('lowering', LOWERINGS)
@pytest.mark.parametrize('case', REPORTED, ids=['5x5-d6', '10x10-d12', '20x20-d24'])
def test_padding_and_dilation_wider_than_the_input(case, lowering, guarded_scratch, monkeypatch):
    run_case(case, lowering, guarded_scratch, monkeypatch)


@pytest.mark.parametrize('lowering', LOWERINGS)
@pytest.mark.parametrize('seed', range(60))
def test_random_geometry(seed, lowering, guarded_scratch, monkeypatch):
    run_case(random_case(seed), lowering, guarded_scratch, monkeypatch)


def test_random_cases_cover_the_lowerings_and_wide_padding():
    """The random cases reach what they are meant to: rows and panels (a vertical stride of 1 and a
    kernel taller than a row), padding wider than the plane, dilated taps outside it, "same"
    convolutions padded wider than the plane, groups, strides, both layer types and dtypes."""
    cases = [random_case(seed) for seed in range(60)]
    assert sum(c.stride[0] == 1 and c.kernel[0] > 1 for c in cases) >= 20
    assert sum(c.pad[0] >= c.shape[2] or c.pad[1] >= c.shape[3] for c in cases) >= 10
    assert sum(c.dilation[0] * 2 > c.shape[2] for c in cases) >= 10
    assert sum(c.kind == 'Convolution' and c.stride == (1, 1) and c.pad[0] > c.shape[2] and
               conv_out_size(c.shape[2], c.kernel[0], 1, c.pad[0], c.dilation[0]) == c.shape[2]
               for c in cases) >= 4
    assert {c.kind for c in cases} == {'Convolution', 'Deconvolution'}
    assert {c.group for c in cases} == {1, 2, 3}
    assert {c.dtype for c in cases} == {np.float32, np.float64}
    assert any(c.stride[1] > 1 for c in cases)


@pytest.mark.parametrize('seed', range(60))
def test_random_depthwise_geometry(seed, guarded_scratch, monkeypatch):
    """Depthwise layers through the direct kernels (the plan must have chosen them)."""
    layer = run_case(random_depthwise_case(seed), 'auto', guarded_scratch, monkeypatch)
    assert layer.lowering == workspace.Lowering('direct', 'direct', 'direct')


def test_random_depthwise_cases_cover_the_kernels_paths():
    """The depthwise cases reach every path of the direct kernels: 3x3 stride 1 (flat passes)
    and 2 (passes per row; the data gradient a correlation of the spread top), other kernels
    and strides (3; unequal ones: the weight gradient's per-column sums), channel multipliers
    above 1, padding beyond the kernel's reach (the data gradient scattered), padding wider than
    the plane, dilation, both layer types and dtypes, and layers with and without a bias."""
    cases = [random_depthwise_case(seed) for seed in range(60)]
    conv = [c for c in cases if c.kind == 'Convolution']
    assert sum(c.kernel == (3, 3) and c.stride == (1, 1) for c in conv) >= 8
    assert sum(c.kernel == (3, 3) and c.stride == (2, 2) for c in conv) >= 8
    assert sum(c.kernel != (3, 3) for c in cases) >= 15
    assert any(c.stride[0] != c.stride[1] for c in cases)
    assert any(3 in c.stride for c in cases)
    outputs = [int(c.params.split()[1]) for c in cases]    # num_output
    assert sum(c.kind == 'Convolution' and n != c.group for c, n in zip(cases, outputs)) >= 8
    assert sum(c.kind == 'Deconvolution' and c.shape[1] != c.group for c in cases) >= 2
    assert sum(c.stride == (1, 1) and any(c.pad[a] > (c.kernel[a] - 1) * c.dilation[a]
                                          for a in range(2)) for c in cases) >= 3
    assert sum(c.stride != (1, 1) and any(c.pad[a] > (c.kernel[a] - 1) * c.dilation[a]
                                          for a in range(2)) for c in cases) >= 3
    assert sum(c.pad[0] >= c.shape[2] or c.pad[1] >= c.shape[3] for c in cases) >= 8
    assert sum(max(c.dilation) > 1 for c in cases) >= 15
    assert {c.dtype for c in cases} == {np.float32, np.float64}
    assert {c.kind for c in cases} == {'Convolution', 'Deconvolution'}
    assert any('bias_term: false' in c.params for c in cases)


# MobileNet's depthwise shapes, scaled down: 3x3 pad 1 stride 1 and 2, rows long enough for the
# weight gradient's per-column sums (stride 2, 35 outputs wide), a plane long enough for its
# nine taps in one pass (stride 1, 40x9 outputs) with a multiplier of 2, more images than the
# weight gradient stacks in one pass (2 padded 40x40 planes), and stacked planes whose padded
# height (15) is rounded up to the stride.
MOBILENET = [Case('Convolution', 'num_output: %d kernel_size: 3 pad: 1 stride: %d group: %d '
                  'bias_term: false' % (outputs, stride, group), shape, (3, 3), (stride,) * 2,
                  (1, 1), (1, 1), group, dtype)
             for outputs, stride, group, shape, dtype in [
                 (3, 1, 3, (2, 3, 7, 7), np.float32), (4, 2, 4, (2, 4, 14, 14), np.float32),
                 (2, 2, 2, (3, 2, 6, 70), np.float64), (4, 1, 2, (2, 2, 40, 9), np.float64),
                 (2, 1, 2, (23, 2, 38, 38), np.float64), (3, 2, 3, (3, 3, 13, 11), np.float64)]]


@pytest.mark.parametrize('case', MOBILENET, ids=['7x7', '14x14-s2', 'long-rows-s2', 'k2',
                                                 'stacked-twice', 'stacked-s2'])
def test_mobilenet_depthwise_shapes(case, guarded_scratch, monkeypatch):
    layer = run_case(case, 'auto', guarded_scratch, monkeypatch)
    assert layer.lowering == workspace.Lowering('direct', 'direct', 'direct')
