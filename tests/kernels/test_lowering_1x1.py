"""The 'full' lowering's 1x1 path (a 1x1 kernel, stride 1, no padding, one image per partition):
the GEMMs read and write the images in place instead of through the column buffer, and give what
the lowered route gives (the partition of 2 images still lowers; both are checked against numpy)."""
import numpy as np
import pytest

from cct import kernels

GEOMETRY = (1, 1, 0, 0, 1, 1, 1, 1, 5, 7)   # kernel, pad, stride, dilation, out_h, out_w


def _scratch(threads, rows, values):
    return np.zeros((threads, rows * values), np.float64)


@pytest.mark.parametrize('partition', [1, 2])
@pytest.mark.parametrize('group', [1, 2])
def test_1x1_products_match_numpy(partition, group):
    rng = np.random.default_rng(7 + partition + group)
    num, channels, outputs, pixels = 5, 6, 4, 35
    threads = kernels.max_threads()
    images = rng.standard_normal((num, channels, 5, 7))
    weights = rng.standard_normal((outputs, channels // group))
    bias = rng.standard_normal(outputs)
    col = np.zeros((threads, channels // group * partition * pixels))
    row = np.zeros((threads, max(outputs, channels) * partition * pixels))
    # numpy: per group, out[n, g] = W_g @ images[n, g]
    flat = images.reshape(num, group, channels // group, pixels)
    w = weights.reshape(group, outputs // group, channels // group)
    expected = np.einsum('gmc,ngcp->ngmp', w, flat).reshape(num, outputs, pixels) + \
        bias[None, :, None]
    out = np.zeros((num, outputs, pixels))
    kernels.lowered_forward(images, weights, bias, out, GEOMETRY, group, partition, col, row)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)

    rows = rng.standard_normal((num, outputs, pixels))
    image_bias = rng.standard_normal(channels)
    back = np.full_like(images, np.nan)   # overwritten entirely
    kernels.lowered_backward_data(rows, weights, image_bias, back, GEOMETRY, group, partition,
                                  col, row)
    expected_back = np.einsum('gmc,ngmp->ngcp', w, rows.reshape(num, group, outputs // group,
                                                                pixels))
    expected_back = expected_back.reshape(num, channels, 5, 7) + image_bias[None, :, None, None]
    np.testing.assert_allclose(back, expected_back, rtol=1e-12, atol=1e-12)

    weight_diff = np.ones_like(weights)
    bias_diff = np.ones(outputs)
    kernels.lowered_weight_grad(images, rows, weight_diff, bias_diff, True, GEOMETRY, group,
                                partition, col, row, np.zeros((threads, weights.size)),
                                np.zeros((threads, outputs)))
    expected_wd = 1 + np.einsum('ngmp,ngcp->gmc', rows.reshape(num, group, outputs // group,
                                                               pixels), flat).reshape(weights.shape)
    np.testing.assert_allclose(weight_diff, expected_wd, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bias_diff, 1 + rows.sum(axis=(0, 2)), rtol=1e-12, atol=1e-12)


def test_partitions_of_narrow_large_layers_take_enough_images_for_wide_gemms():
    from cct import workspace
    big = workspace.GEMM_MIN_MACS * 10
    # ResNet-50's res5 (7x7 outputs): 4 images give GEMMs of 196 columns; 14x14 keeps one image.
    assert workspace.partition_size(16, 1000, big, 2, pixels=49) == \
        -(-workspace.GEMM_MIN_COLUMNS // 49)
    assert workspace.partition_size(16, 1000, big, 2, pixels=196) == 1
    # Capped by the threads' share of the batch, and small layers keep their MAC-based size.
    assert workspace.partition_size(4, 1000, big, 2, pixels=49) == 2
    small = workspace.GEMM_MIN_MACS // 4
    assert workspace.partition_size(64, 1000, small, 2, pixels=64) == 4
    assert workspace.partition_size(64, 1000, small, 2, pixels=4) == 4
