"""The panel lowering's kernels (cct.kernels.lowering, conv_panels.h) called directly: their
argument checks, and the work counts the lowering policy reads. Their results are tested through
the Convolution and Deconvolution layers (tests/layers), against a direct convolution, the
gradient checker and the other lowerings."""
import numpy as np
import pytest

from cct import kernels

# 5x5, pad 2 over 8x8 images: CIFAR-10's conv3 geometry
GEOMETRY = (5, 5, 2, 2, 1, 1, 1, 1, 8, 8)


def buffers(dtype=np.float32, channels=4, outputs=8, num=2):
    sizes = kernels.panel_sizes(GEOMETRY, 8, 8, channels, outputs, np.dtype(dtype).itemsize)
    threads = kernels.max_threads()
    return sizes, {
        'images': np.zeros((num, channels, 8, 8), dtype),
        'weights': np.zeros((outputs, channels * 25), dtype),
        'out': np.zeros((num, outputs, 64), dtype),
        'r': np.zeros((threads, sizes['r']), dtype),
        'packed': np.zeros(max(sizes['forward_weights'], sizes['backward_weights']), dtype),
    }


def test_sizes_follow_the_layout():
    """Float panels hold 8 columns, double panels 4; R has out_h + kh - 1 rows of one panel
    (8 columns / 8) of channels*kw values rounded up to 4; the forward product skips the kernel
    rows that read only padding, for whole blocks of 3 panels (here 3 rows)."""
    sizes = kernels.panel_sizes(GEOMETRY, 8, 8, 3, 10, 4)
    assert sizes['lanes'] == 8
    assert sizes['weight_rows'] == 4             # 10 outputs: 2 vectors, not a multiple of 4
    assert kernels.panel_sizes(GEOMETRY, 8, 8, 3, 32, 4)['weight_rows'] == 3
    assert sizes['r'] == 12 * 1 * 16 * 8          # k = 3*5 = 15 -> 16 rows of 8 values
    assert sizes['top'] == (8 + 2 * 4) * 1 * 12 * 8   # 10 outputs -> 12, 4 zero rows each side
    assert sizes['rows_work'] == 8 * 5
    # blocks of rows (0-2), (3-5), (6-7) run kernel rows 0-4, 0-4 and 0-3
    assert sizes['forward_work'] == 3 * 5 + 3 * 5 + 2 * 4
    assert kernels.panel_sizes(GEOMETRY, 8, 8, 3, 10, 8)['lanes'] == 4


def test_scratch_and_packed_weights_are_checked():
    sizes, b = buffers()
    kernels.panel_forward(b['images'], b['weights'], np.zeros(0, np.float32), b['out'], GEOMETRY,
                          1, b['r'], b['packed'])
    with pytest.raises(ValueError, match='scratch needs'):
        kernels.panel_forward(b['images'], b['weights'], np.zeros(0, np.float32), b['out'],
                              GEOMETRY, 1, np.zeros((b['r'].shape[0], sizes['r'] - 1),
                                                    np.float32), b['packed'])
    with pytest.raises(ValueError, match='packed weights need'):
        kernels.panel_forward(b['images'], b['weights'], np.zeros(0, np.float32), b['out'],
                              GEOMETRY, 1, b['r'], b['packed'][:-1])


def test_vertical_stride_must_be_one():
    sizes, b = buffers()
    strided = GEOMETRY[:4] + (2,) + GEOMETRY[5:8] + (4, 8)
    with pytest.raises(ValueError, match='vertical stride of 1, not 2'):
        kernels.panel_forward(b['images'], b['weights'], np.zeros(0, np.float32),
                              np.zeros((2, 8, 32), np.float32), strided, 1, b['r'], b['packed'])


def test_shapes_are_checked():
    sizes, b = buffers()
    with pytest.raises(ValueError, match='column side'):
        kernels.panel_forward(b['images'], b['weights'], np.zeros(0, np.float32),
                              np.zeros((2, 8, 63), np.float32), GEOMETRY, 1, b['r'], b['packed'])
    with pytest.raises(ValueError, match='bias has 3 values for 8 outputs'):
        kernels.panel_forward(b['images'], b['weights'], np.zeros(3, np.float32), b['out'],
                              GEOMETRY, 1, b['r'], b['packed'])


def test_rows_too_wide_for_the_stack_take_the_general_path():
    """Image rows past 16384 values are lowered column by column instead of from a padded copy
    on the stack; both give the row lowering's result."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((1, 2, 3, 16400)).astype(np.float32)
    weights = rng.standard_normal((4, 2 * 2 * 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    geometry = (2, 3, 1, 1, 1, 1, 1, 1, 4, 16400)
    threads = kernels.max_threads()
    sizes = kernels.panel_sizes(geometry, 3, 16400, 2, 4, 4)
    got = np.zeros((1, 4, 4 * 16400), np.float32)
    kernels.panel_forward(images, weights, bias, got, geometry, 1,
                          np.zeros((threads, sizes['r']), np.float32),
                          np.zeros(sizes['forward_weights'], np.float32))
    expected = np.zeros_like(got)
    rows = kernels.row_lowering_rows(geometry)
    kernels.row_lowered_forward(images, weights, bias, expected, geometry, 1,
                                np.zeros((threads, 2 * 3 * rows * 16400), np.float32),
                                np.zeros(weights.size, np.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
