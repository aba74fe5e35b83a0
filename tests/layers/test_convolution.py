"""Convolution (cct/layers/convolution.py): shapes, forward against a direct convolution written here
(group, dilation, pad/stride/kernel and their _h/_w forms, bias_term, several bottoms), gradients,
a directional check at a realistic size, batch partitions of the CcT lowering, and Caffe's errors
(Caffe's test_convolution_layer)."""
import os

import numpy as np
import pytest

from cct import workspace
from cct.errors import NetError
from cct.layers.geometry import conv_out_size
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

FILLERS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" }'


def conv_layer(params, bottom_shapes, **kwargs):
    return make_layer('type: "Convolution" convolution_param { %s %s }' % (params, FILLERS),
                      bottom_shapes, num_top=len(bottom_shapes), **kwargs)


def conv_reference(x, weights, bias, stride, pad, dilation, group):
    """out[n, o, y, x] = sum over the group's channels and the kernel of w * padded input."""
    num, channels, height, width = x.shape
    outputs, per_group, kernel_h, kernel_w = weights.shape
    out_h = conv_out_size(height, kernel_h, stride[0], pad[0], dilation[0])
    out_w = conv_out_size(width, kernel_w, stride[1], pad[1], dilation[1])
    padded = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    out = np.zeros((num, outputs, out_h, out_w))
    outs_per_group = outputs // group
    for g in range(group):
        ins = slice(g * per_group, (g + 1) * per_group)
        outs = slice(g * outs_per_group, (g + 1) * outs_per_group)
        for i in range(kernel_h):
            for j in range(kernel_w):
                patch = padded[:, ins,
                               i * dilation[0]:i * dilation[0] + stride[0] * (out_h - 1) + 1:stride[0],
                               j * dilation[1]:j * dilation[1] + stride[1] * (out_w - 1) + 1:stride[1]]
                out[:, outs] += np.einsum('nchw,oc->nohw', patch, weights[outs, :, i, j])
    return out + (bias[None, :, None, None] if bias is not None else 0)


SETTINGS = [
    # (params, bottom shape, stride, pad, dilation, group) -- the first three are Caffe's tests
    ('num_output: 4 kernel_size: 3 stride: 2', (2, 3, 6, 4), (2, 2), (0, 0), (1, 1), 1),
    ('num_output: 3 kernel_size: 3 stride: 2 group: 3', (2, 3, 6, 4), (2, 2), (0, 0), (1, 1), 3),
    ('num_output: 4 kernel_size: 3 dilation: 2', (2, 3, 7, 5), (1, 1), (0, 0), (2, 2), 1),
    ('num_output: 2 kernel_size: 3 pad: 1', (2, 2, 4, 5), (1, 1), (1, 1), (1, 1), 1),
    ('num_output: 2 kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0',
     (2, 2, 5, 4), (2, 1), (1, 0), (1, 1), 1),
    ('num_output: 2 kernel_size: 3 kernel_size: 2 stride: 1 stride: 2 pad: 0 pad: 1 '
     'dilation: 1 dilation: 2', (1, 2, 5, 6), (1, 2), (0, 1), (1, 2), 1),
    ('num_output: 4 kernel_size: 2 stride: 3 pad: 2 group: 2 bias_term: false',
     (2, 4, 5, 5), (3, 3), (2, 2), (1, 1), 2),
    ('num_output: 3 kernel_size: 1', (2, 4, 3, 3), (1, 1), (0, 0), (1, 1), 1),   # 1x1
    ('num_output: 4 kernel_h: 3 kernel_w: 2 pad_h: 2 pad_w: 1 stride_h: 1 stride_w: 2 group: 2',
     (2, 4, 4, 5), (1, 2), (2, 1), (1, 1), 2),   # grouped, vertical stride 1, wide padding
]


def forced(lowering, stride_h, kernel_h):
    """The Lowering that CCT_LOWERING=``lowering`` gives a layer: rows and panels need a
    vertical stride of 1 and a kernel taller than one row."""
    method = lowering if stride_h == 1 and kernel_h > 1 else 'full'
    return workspace.Lowering(method, method, method)


@pytest.mark.parametrize('lowering', ['full', 'rows', 'panels'])
@pytest.mark.parametrize('params, shape, stride, pad, dilation, group', SETTINGS)
def test_forward_matches_direct_convolution_and_gradients(params, shape, stride, pad, dilation,
                                                          group, lowering, monkeypatch):
    """Every lowering: all kernel taps per partition, and (vertical stride 1, kernel taller than
    one row) the row lowering's kh GEMMs per image and the panel lowering's kernels (in float64
    here: panels of 4 values, so widths of 1 to 5 leave every kind of partial panel)."""
    monkeypatch.setattr(workspace, 'LOWERING', lowering)
    layer, bottom, top = conv_layer(params, [shape], seed=3)
    assert layer.lowering == forced(lowering, stride[0], layer.geometry.kernel[0])
    layer.forward(bottom, top)
    bias = layer.blobs[1].data if len(layer.blobs) == 2 else None
    expected = conv_reference(bottom[0].data, layer.blobs[0].data, bias, stride, pad, dilation,
                              group)
    assert top[0].shape == expected.shape
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-10, atol=1e-12)
    GradientChecker(1e-2, 1e-3).check(layer, bottom, top)


def test_setup_shapes_and_parameter_blobs():
    """Caffe's TestSetup: 2x3x6x4 with kernel 3, stride 2, 4 outputs."""
    layer, bottom, top = conv_layer('num_output: 4 kernel_size: 3 stride: 2', [(2, 3, 6, 4)] * 2)
    assert [t.shape for t in top] == [(2, 4, 2, 1)] * 2
    assert [b.shape for b in layer.blobs] == [(4, 3, 3, 3), (4,)]
    layer, _, top = conv_layer('num_output: 3 kernel_size: 3 stride: 2 group: 3',
                               [(2, 3, 6, 4)])
    assert top[0].shape == (2, 3, 2, 1) and layer.blobs[0].shape == (3, 1, 3, 3)


def test_several_bottoms_share_the_weights():
    layer, bottom, top = conv_layer('num_output: 3 kernel_size: 2 pad: 1', [(2, 2, 3, 4)] * 2,
                                    seed=5)
    layer.forward(bottom, top)
    for b, t in zip(bottom, top):
        np.testing.assert_allclose(t.data, conv_reference(b.data, layer.blobs[0].data,
                                                          layer.blobs[1].data, (1, 1), (1, 1),
                                                          (1, 1), 1), rtol=1e-10)
    GradientChecker(1e-2, 1e-3).check(layer, bottom, top)


def test_omitted_fillers_are_constant_zero():
    layer, _, _ = make_layer('type: "Convolution" convolution_param { num_output: 2 '
                             'kernel_size: 1 }', [(1, 2, 2, 2)])
    assert not layer.blobs[0].data.any() and not layer.blobs[1].data.any()


def test_float32_matches_float64():
    params = 'num_output: 5 kernel_size: 3 stride: 2 pad: 1 group: 1'
    layer64, bottom64, top64 = conv_layer(params, [(3, 4, 9, 7)], seed=2)
    layer32, bottom32, top32 = conv_layer(params, [(3, 4, 9, 7)], seed=2, dtype=np.float32)
    for blob32, blob64 in zip(layer32.blobs, layer64.blobs):
        blob32.data[...] = blob64.data
    layer64.forward(bottom64, top64)
    layer32.forward(bottom32, top32)
    np.testing.assert_allclose(top32[0].data, top64[0].data, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('lowering', ['full', 'rows', 'panels'])
def test_directional_gradient_at_a_realistic_size(lowering, monkeypatch):
    """A CaffeNet-conv2-like layer (grouped, padded) is too large for element-wise checks; the
    dot-product test along random directions covers weights, bias and input at once."""
    monkeypatch.setattr(workspace, 'LOWERING', lowering)
    layer, bottom, top = conv_layer('num_output: 32 kernel_size: 5 pad: 2 group: 2',
                                    [(4, 16, 13, 13)], seed=11)
    assert layer.lowering == forced(lowering, 1, 5)
    GradientChecker(1e-3, 1e-4).check_directional(layer, bottom, top, directions=4)


def run_lowering(lowering, params, shape, seed, monkeypatch):
    """Forward and backward of a float32 layer under CCT_LOWERING=``lowering``, with the same
    weights and top diff for every lowering: [top, bottom diff, weight diff, bias diff]."""
    monkeypatch.setattr(workspace, 'LOWERING', lowering)
    layer, bottom, top = conv_layer(params, [shape], dtype=np.float32)
    rng = np.random.default_rng(seed)
    for blob in layer.blobs + bottom:
        blob.data[...] = rng.standard_normal(blob.shape)
    layer.forward(bottom, top)
    top[0].diff[...] = rng.standard_normal(top[0].shape)
    layer.backward(top, [True], bottom)
    return [top[0].data.copy(), bottom[0].diff.copy(), layer.blobs[0].diff.copy(),
            layer.blobs[1].diff.copy()]


AGREEMENT = [
    # CIFAR-10 conv2-like (8 columns: whole float panels), then partial panels, groups, dilation,
    # horizontal stride and a top narrower than one panel
    ('num_output: 8 kernel_size: 5 pad: 2', (3, 8, 9, 8)),
    ('num_output: 6 kernel_size: 3 pad: 1 group: 2', (2, 4, 7, 19)),
    ('num_output: 5 kernel_size: 3 dilation: 2 pad: 1', (2, 3, 9, 12)),
    ('num_output: 4 kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 2 pad_h: 2 pad_w: 1',
     (3, 2, 6, 21)),
    ('num_output: 9 kernel_size: 5', (2, 3, 7, 5)),
]


@pytest.mark.parametrize('lowering', ['rows', 'panels', 'auto'])
@pytest.mark.parametrize('params, shape', AGREEMENT)
def test_lowerings_agree_in_float32(params, shape, lowering, monkeypatch):
    """Forward, input, weight and bias gradients of the row and panel lowerings (and whatever
    auto picks) equal the full lowering's up to float reordering, in float32: panels of 8 values,
    their partial last panels and the 4x3, 4x2 and 4x1 blocks of the kernels."""
    expected = run_lowering('full', params, shape, 12, monkeypatch)
    got = run_lowering(lowering, params, shape, 12, monkeypatch)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_lowering_policy(monkeypatch):
    """Per product, from the layer's shape (float32), on a CPU whose vectors are as wide as the
    panels' (AVX2): CIFAR-10's layers take the panels for all
    three (32 and 64 outputs fill whole 3x4 weight-gradient blocks; conv1's K = 15 is too thin
    for rows anyway); LeNet's unpadded conv2 keeps rows for its data gradient (its blocks of
    panels would run more kernel rows than the GEMMs) and its weight gradient (50 outputs);
    CaffeNet's conv2 (27 columns waste a sixth of the panels' lanes, and its panels overflow L2)
    and strided or 1x1 layers never take them."""
    monkeypatch.setenv('CCT_VECTOR_BITS', '256')

    def lowering(params, shape):
        layer, _, _ = conv_layer(params, [shape], dtype=np.float32)
        return tuple(layer.lowering)
    assert lowering('num_output: 32 kernel_size: 5 pad: 2', (8, 3, 32, 32)) == \
        ('panels', 'panels', 'panels')
    assert lowering('num_output: 32 kernel_size: 5 pad: 2', (8, 32, 16, 16)) == \
        ('panels', 'panels', 'panels')
    assert lowering('num_output: 64 kernel_size: 5 pad: 2', (8, 32, 8, 8)) == \
        ('panels', 'panels', 'panels')
    assert lowering('num_output: 50 kernel_size: 5', (8, 20, 12, 12)) == \
        ('panels', 'rows', 'rows')
    assert lowering('num_output: 256 kernel_size: 5 pad: 2 group: 2', (2, 96, 27, 27)) == \
        ('rows', 'rows', 'rows')
    assert lowering('num_output: 96 kernel_size: 11 stride: 4', (2, 3, 227, 227)) == \
        ('full', 'full', 'full')
    assert lowering('num_output: 16 kernel_size: 1', (2, 8, 16, 16)) == ('full', 'full', 'full')


def test_panel_policy_follows_the_l2_size(monkeypatch):
    """The panels need one image's lowering and the packed weights in L2: with a 64 KiB L2,
    CIFAR-10's conv2 (about 300 KiB of them) goes back to rows."""
    monkeypatch.setenv('CCT_L2_KB', '64')
    monkeypatch.setenv('CCT_VECTOR_BITS', '256')
    layer, _, _ = conv_layer('num_output: 32 kernel_size: 5 pad: 2', [(8, 32, 16, 16)],
                             dtype=np.float32)
    assert tuple(layer.lowering) == ('rows', 'rows', 'rows')


@pytest.mark.parametrize('bits', ['128', '256', '512'])
def test_panels_at_every_vector_width(bits, monkeypatch):
    """The panels' kernels use 256-bit vectors, which a CPU with wider ones (AVX-512) runs as
    well: CIFAR-10's conv1 and conv2 take them for all three products whatever width the CPU
    reports; only the thin-K GEMMs beside them follow the width (LeNet's conv1 weight gradient:
    rows on AVX-512, panels below)."""
    from cct import workspace as ws
    monkeypatch.setenv('CCT_VECTOR_BITS', bits)
    assert ws.vector_bits() == int(bits)
    for shape in ((8, 32, 16, 16), (8, 3, 32, 32)):
        layer, _, _ = conv_layer('num_output: 32 kernel_size: 5 pad: 2', [shape],
                                 dtype=np.float32)
        assert tuple(layer.lowering) == ('panels',) * 3
    layer, _, _ = conv_layer('num_output: 20 kernel_size: 5', [(8, 1, 28, 28)], dtype=np.float32)
    assert tuple(layer.lowering) == ('panels', 'panels', 'rows' if bits == '512' else 'panels')
    monkeypatch.delenv('CCT_VECTOR_BITS')
    flags = []
    if os.path.exists('/proc/cpuinfo'):   # elsewhere the CPU reports nothing: 128 bits
        with open('/proc/cpuinfo') as f:
            flags = next((line for line in f if line.startswith('flags')), '').split()
    assert ws.vector_bits() == (512 if 'avx512f' in flags else 256 if 'avx' in flags else 128)


def test_gemm_lowering_policy(monkeypatch):
    """Without panels: rows for stride-1 layers with enough horizontal taps per GEMM and few
    outputs, large images, or a long K over 12x12 or more (CIFAR-10's conv2/conv3, CaffeNet's
    conv2-conv5); the full lowering for CIFAR-10's conv1 (K = 15), strided, 1-row and
    many-output small-image layers (GoogLeNet's 14x14 and 7x7 3x3s), on a CPU whose vectors are
    as wide as the panels' (AVX2); with wider ones (AVX-512) rows take thin K too."""
    monkeypatch.setenv('CCT_VECTOR_BITS', '256')

    def gemm(kernel_h, stride_h, k_rows, m_group, col_hw):
        return workspace.choose_lowering(kernel_h, stride_h, k_rows, m_group, col_hw, None)
    assert gemm(5, 1, 32 * 5, 32, (16, 16)) == ('rows',) * 3
    assert gemm(5, 1, 48 * 5, 128, (27, 27)) == ('rows',) * 3
    assert gemm(5, 1, 3 * 5, 32, (32, 32)) == ('full',) * 3
    assert gemm(11, 4, 3 * 11, 96, (55, 55)) == ('full',) * 3
    assert gemm(1, 1, 64, 64, (28, 28)) == ('full',) * 3
    assert gemm(3, 1, 160 * 3, 320, (7, 7)) == ('full',) * 3
    assert gemm(3, 1, 256 * 3, 384, (13, 13)) == ('rows',) * 3   # CaffeNet conv3
    assert gemm(3, 1, 192 * 3, 192, (13, 13)) == ('rows',) * 3   # CaffeNet conv4
    assert gemm(3, 1, 160 * 3, 320, (14, 14)) == ('full',) * 3   # GoogLeNet 4e
    assert gemm(3, 1, 192 * 3, 384, (7, 7)) == ('full',) * 3     # GoogLeNet 5b
    monkeypatch.setenv('CCT_VECTOR_BITS', '512')
    assert gemm(5, 1, 3 * 5, 32, (32, 32)) == ('rows',) * 3      # CIFAR-10 conv1
    assert gemm(5, 1, 1 * 5, 20, (24, 24)) == ('rows',) * 3      # LeNet conv1
    assert gemm(3, 1, 160 * 3, 320, (14, 14)) == ('full',) * 3   # GoogLeNet 4e, unchanged


def test_batch_partitions_give_the_same_result(monkeypatch):
    """The CcT lowering splits the batch when the column buffer would exceed the budget; a budget of
    one image per partition must reproduce the whole batch lowered as one partition."""
    params = 'num_output: 4 kernel_size: 3 pad: 1 group: 2'
    layer, bottom, top = conv_layer(params, [(5, 4, 6, 6)], seed=4)
    layer.partition = 5
    assert layer.partitions() == [(0, 5)]
    layer.forward(bottom, top)
    top[0].diff[...] = np.random.default_rng(0).standard_normal(top[0].shape)
    layer.backward(top, [True], bottom)
    whole = (top[0].data.copy(), bottom[0].diff.copy(), layer.blobs[0].diff.copy())
    one_image = 4 // 2 * 3 * 3 * 6 * 6 * 8  # one group's columns of one image, in float64
    monkeypatch.setattr(workspace, 'LOWERING_BUDGET_BYTES', one_image)
    layer._shape_key = None
    layer.reshape(bottom, top)
    assert layer.partitions() == [(i, i + 1) for i in range(5)]
    layer.blobs[0].diff[...] = 0
    layer.forward(bottom, top)
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(top[0].data, whole[0], rtol=1e-12)
    np.testing.assert_allclose(bottom[0].diff, whole[1], rtol=1e-12)
    np.testing.assert_allclose(layer.blobs[0].diff, whole[2], rtol=1e-12)


def test_weight_gradient_accumulates_and_propagate_down():
    layer, bottom, top = conv_layer('num_output: 2 kernel_size: 2', [(1, 1, 3, 3)], seed=1)
    layer.forward(bottom, top)
    top[0].diff[...] = 1
    layer.backward(top, [False], bottom)
    once = layer.blobs[0].diff.copy()
    assert not bottom[0].diff.any()
    layer.backward(top, [False], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once)
    np.testing.assert_allclose(layer.blobs[1].diff, 2 * 4)   # 2x2 outputs, twice


@pytest.mark.parametrize('params, shapes, message', [
    ('num_output: 4 kernel_size: 3 group: 2', [(1, 3, 5, 5)], 'must be divisible by group'),
    ('kernel_size: 3', [(1, 3, 5, 5)], 'num_output must be specified'),
    ('num_output: 2', [(1, 3, 5, 5)], 'kernel_size .or kernel_h and kernel_w. is required'),
    ('num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3', [(1, 3, 5, 5)],
     'either kernel_size or kernel_h/w should be specified; not both'),
    ('num_output: 2 kernel_size: 3 kernel_size: 3 kernel_size: 3', [(1, 3, 5, 5)],
     'specified once, or once per spatial dimension'),
    ('num_output: 2 kernel_size: 3 stride: 0', [(1, 3, 5, 5)], 'stride dimensions must be nonzero'),
    ('num_output: 2 kernel_size: 7', [(1, 3, 5, 5)], 'output would be empty'),
    ('num_output: 2 kernel_size: 3', [(1, 3, 5, 5), (1, 3, 5, 6)], 'all inputs must have the same'),
])
def test_errors(params, shapes, message):
    with pytest.raises(NetError, match=message):
        conv_layer(params, shapes)
