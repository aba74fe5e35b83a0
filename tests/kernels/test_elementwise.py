"""The CPU device's multi-core copy, scale and axpby (cct/kernels/elementwise.pyx) give the bits of
the numpy steps they replace, for every alpha/beta branch, both float types and in place."""
import numpy as np
import pytest

from cct.devices import cpu
from cct.kernels import elementwise

COUNT = cpu.PARALLEL_MIN + 1001   # over the threshold, not a multiple of the blocks


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('alpha,beta', [(1, 1), (-1, 1), (0.3, 1), (1, 0), (0.7, 0), (1, 0.9),
                                        (-1, 2.5), (0.3, -0.1), (0, 0.5)])
def test_axpby_matches_numpy_bit_for_bit(dtype, alpha, beta):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(COUNT).astype(dtype)
    y = rng.standard_normal(COUNT).astype(dtype)
    expected = y.copy()
    cpu.numpy_axpby(alpha, x, beta, expected)
    elementwise.axpby(alpha, x, beta, y)
    np.testing.assert_array_equal(y.view(np.uint8), expected.view(np.uint8))


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_scale_and_copy_match_numpy(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(COUNT).astype(dtype)
    x[5] = -0.0
    out = np.empty_like(x)
    elementwise.scale(x, 1.0 / 3, out)
    np.testing.assert_array_equal(out, x * dtype(1.0 / 3))
    elementwise.scale(out, 3.0, out)   # in place
    np.testing.assert_array_equal(out, (x * dtype(1.0 / 3)) * dtype(3.0))
    elementwise.copy(x, out)
    assert out.tobytes() == x.tobytes()


def test_device_primitives_take_the_kernels_on_large_contiguous_arrays():
    device = cpu.open_device(0)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, COUNT // 4)).astype(np.float32)
    y = rng.standard_normal(x.size).astype(np.float32)   # another shape, one count
    expected = y.copy()
    cpu.numpy_axpby(0.25, x.reshape(-1), 0.5, expected)
    device.axpby(0.25, x, 0.5, y)
    np.testing.assert_array_equal(y, expected)
    out = np.empty_like(x)
    device.scale(y, 2.0, out)
    np.testing.assert_array_equal(out.reshape(-1), y * np.float32(2.0))
    device.copy(x, y)
    np.testing.assert_array_equal(y, x.reshape(-1))
    # A strided view stays on numpy's path and still gives the right answer.
    device.copy(x[:, ::2].copy(), out[:, ::2])
    np.testing.assert_array_equal(out[:, ::2], x[:, ::2])


def test_lengths_must_match():
    with pytest.raises(ValueError, match='differ in length'):
        elementwise.axpby(1.0, np.zeros(10, np.float32), 1.0, np.zeros(11, np.float32))


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_add_matches_numpy(dtype):
    rng = np.random.default_rng(6)
    a, b = (rng.standard_normal(COUNT).astype(dtype) for _ in range(2))
    out = np.empty_like(a)
    elementwise.add(a, b, out)
    np.testing.assert_array_equal(out, a + b)
    cpu.open_device(0).add(a[:10], b[:10], out[:10])   # numpy's path below the threshold
    np.testing.assert_array_equal(out[:10], a[:10] + b[:10])


LARGE = [(2, 4, 64, 65)]   # over PARALLEL_MIN: the one-pass kernels


def test_eltwise_sum_and_split_in_one_pass_give_the_sequential_sums():
    from cct.testing import make_layer
    layer, bottom, top = make_layer('type: "Eltwise" eltwise_param { operation: SUM }',
                                    LARGE * 3, seed=9)
    layer.forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, (bottom[0].data + bottom[1].data) + bottom[2].data)
    top[0].diff[...] = np.random.default_rng(1).standard_normal(top[0].shape)
    layer.backward(top, [True] * 3, bottom)
    for blob in bottom:
        np.testing.assert_array_equal(blob.diff, top[0].diff)
    layer, bottom, top = make_layer('type: "Split"', LARGE, num_top=3, seed=10)
    for k, t in enumerate(top):
        t.diff[...] = np.random.default_rng(k).standard_normal(t.shape)
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].diff, (top[0].diff + top[1].diff) + top[2].diff)
