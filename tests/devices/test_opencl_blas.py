"""Accelerator primitives (OpenCL; CUDA where a GPU is) against numpy and the CPU device: memory and
transfer, pycaffe's host views, GEMM, the BLAS-like family, reductions."""
import numpy as np
import pytest

from cct.errors import DeviceError
from opencl_support import DTYPES, assert_close


def _random(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize('dtype', DTYPES)
def test_transfer_copy_fill_and_views(accel, dtype):
    host = _random((3, 4, 5), dtype)
    array = accel.from_host(host)
    assert array.shape == (3, 4, 5) and array.dtype == dtype
    np.testing.assert_array_equal(accel.to_host(array), host)
    flat = array.reshape(-1)
    view = flat[7:31]
    accel.fill(view, 2.5)
    expected = host.reshape(-1).copy()
    expected[7:31] = 2.5
    np.testing.assert_array_equal(accel.to_host(array).reshape(-1), expected)
    target = accel.zeros((24,), dtype)
    accel.copy(flat[50:], target[:10])
    out = np.empty(24, dtype)
    accel.to_host(target, out=out)
    np.testing.assert_array_equal(out[:10], expected[50:])
    np.testing.assert_array_equal(out[10:], 0)
    accel.from_host(np.arange(10, dtype=dtype), out=target[14:])
    np.testing.assert_array_equal(accel.to_host(target)[14:], np.arange(10))
    # A non-contiguous host array is copied in C order.
    strided = host[:, ::2, :]
    np.testing.assert_array_equal(accel.to_host(accel.from_host(strided)), strided)


@pytest.mark.parametrize('dtype', [np.int32, np.uint8])
def test_zeros_and_fill_of_integer_arrays(accel, dtype):
    array = accel.zeros(37, dtype)
    np.testing.assert_array_equal(accel.to_host(array), 0)
    accel.fill(array[3:20], 7)
    expected = np.zeros(37, dtype)
    expected[3:20] = 7
    np.testing.assert_array_equal(accel.to_host(array), expected)


def test_blob_host_views_follow_caffes_syncedmemory(accel):
    # test_seam's SyncedMemory test on the real device arrays (PyOpenCL's, CuPy's), written only
    # through the primitives.
    from cct.blob import Blob
    blob = Blob(2, 3, device=accel)
    assert np.array_equal(blob.data, np.zeros((2, 3)))
    blob.data[...] = np.arange(6).reshape(2, 3)     # a script writes the host view in place
    np.testing.assert_array_equal(accel.to_host(blob.dev_data), np.arange(6).reshape(2, 3))
    accel.fill(blob.dev_data, 7)                     # the device writes (head: device)
    assert np.all(blob.data == 7)                    # synced on access
    blob.diff[0, 0] = 5
    assert accel.sum(blob.dev_diff) == 5
    blob.reshape(4, 3)                               # grows: a new zeroed buffer
    assert np.all(blob.data == 0) and blob.dev_data.shape == (4, 3)
    other = Blob(4, 3, device=accel)
    other.share_data(blob)
    blob.data[1] = 2
    np.testing.assert_array_equal(accel.to_host(other.dev_data)[1], 2)


def test_scratch_reuses_one_buffer_per_purpose(accel):
    first = accel.scratch('test a', (4, 5), np.float32)
    second = accel.scratch('test a', (2, 3), np.float32)
    other = accel.scratch('test b', (2, 3), np.float32)
    assert accel.runtime.same_memory(first, second)
    assert not accel.runtime.same_memory(other, first)
    assert second.shape == (2, 3)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('trans_a,trans_b', [(False, False), (True, False), (False, True),
                                             (True, True)])
def test_gemm_matches_numpy(accel, each_gemm, dtype, trans_a, trans_b):
    m, n, k = 37, 45, 70   # not multiples of the tile, depth or block
    a = _random((k, m) if trans_a else (m, k), dtype, 1)
    b = _random((n, k) if trans_b else (k, n), dtype, 2)
    c = _random((m, n), dtype, 3)
    out = accel.from_host(c)
    accel.gemm(accel.from_host(a), accel.from_host(b), out, trans_a, trans_b, alpha=0.75, beta=-0.5)
    expected = 0.75 * ((a.T if trans_a else a).astype(np.float64)
                       @ (b.T if trans_b else b).astype(np.float64)) - 0.5 * c
    assert_close(accel.to_host(out), expected, dtype, scale=np.abs(expected).max())


def test_gemm_with_beta_zero_ignores_nan(accel, each_gemm):
    a, b = _random((5, 3), np.float64), _random((3, 4), np.float64)
    out = accel.from_host(np.full((5, 4), np.nan))
    accel.gemm(accel.from_host(a), accel.from_host(b), out)
    assert_close(accel.to_host(out), a @ b)


def test_gemm_shape_mismatch_is_an_error(accel):
    with pytest.raises(DeviceError, match='gemm'):
        accel.gemm(accel.zeros((3, 4), np.float32), accel.zeros((5, 2), np.float32),
                 accel.zeros((3, 2), np.float32))


@pytest.mark.parametrize('dtype', DTYPES)
def test_blas_like_family_matches_cpu(accel, cpu, dtype):
    x, y = _random(1000, dtype, 4), _random(1000, dtype, 5)
    for alpha, beta in ((0.3, -1.7), (1.0, 1.0), (-1.0, 1.0), (2.0, 0.0)):
        expected = y.copy() if beta else np.full_like(y, np.nan)
        device_y = accel.from_host(expected)
        cpu.axpby(alpha, x, beta, expected)
        accel.axpby(alpha, accel.from_host(x), beta, device_y)
        assert_close(accel.to_host(device_y), expected)
    out = accel.empty(1000, dtype)
    accel.scale(accel.from_host(x), -3.25, out)
    assert_close(accel.to_host(out), x * dtype(-3.25))
    accel.mul(accel.from_host(x), accel.from_host(y), out)
    assert_close(accel.to_host(out), x * y)
    # strided_copy: Concat's 3 rows of 4 values into columns 2..5 of rows of 9, and back, added.
    source, target = _random(3 * 7, dtype, 6), _random(4 * 9, dtype, 7)
    for accumulate in (False, True):
        expected = target.copy()
        cpu.strided_copy(source, expected, 3, 4, 7, 1, 9, 2, accumulate)
        device_target = accel.from_host(target)
        accel.strided_copy(accel.from_host(source), device_target, 3, 4, 7, 1, 9, 2, accumulate)
        assert_close(accel.to_host(device_target), expected)
    data, bias = _random((2, 3, 5), dtype, 8), _random(3, dtype, 9)
    device_data = accel.from_host(data)
    accel.add_bias(device_data, accel.from_host(bias), 5)
    cpu.add_bias(data, bias, 5)
    assert_close(accel.to_host(device_data), data)


@pytest.mark.parametrize('dtype', DTYPES)
def test_reductions_match_cpu(accel, cpu, dtype):
    x, y = _random(10007, dtype, 10), _random(10007, dtype, 11)
    dx, dy = accel.from_host(x), accel.from_host(y)
    # Both sum in float64: the float32 case agrees to float64 rounding, far inside 1e-4.
    assert accel.sum(dx) == pytest.approx(cpu.sum(x), rel=1e-12, abs=1e-9)
    assert accel.asum(dx) == pytest.approx(cpu.asum(x), rel=1e-12)
    assert accel.dot(dx, dy) == pytest.approx(float(np.dot(x.astype(np.float64), y)), rel=1e-12,
                                            abs=1e-9)
    assert accel.sum(dx.reshape(-1)[100:101]) == pytest.approx(float(x[100]))
    assert accel.sum(accel.empty(0, dtype)) == 0.0
    data = _random((4, 6, 25), dtype, 12)
    for accumulate in (False, True):
        expected = _random(6, dtype, 13)
        device_out = accel.from_host(expected)
        cpu.channel_sum(data, expected, 25, accumulate)
        accel.channel_sum(accel.from_host(data), device_out, 25, accumulate)
        assert_close(accel.to_host(device_out), expected)


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('trans_a,trans_b', [(False, False), (True, True)])
@pytest.mark.parametrize('k', [3001, 8999])   # a short last slice; a last slice long enough to split
def test_gemm_split_along_k_matches_numpy(accel, each_gemm, dtype, trans_a, trans_b, k):
    # A few outputs over a long k (a weight gradient's shape): the device splits k and sums.
    m, n = 5, 7
    assert accel._k_splits(m, n, k) > 1
    a = _random((k, m) if trans_a else (m, k), dtype, 21)
    b = _random((n, k) if trans_b else (k, n), dtype, 22)
    for beta in (0.0, 0.5):
        c = _random((m, n), dtype, 23) if beta else np.full((m, n), np.nan, dtype)
        out = accel.from_host(c)
        accel.gemm(accel.from_host(a), accel.from_host(b), out, trans_a, trans_b, alpha=1.5, beta=beta)
        expected = 1.5 * ((a.T if trans_a else a).astype(np.float64)
                          @ (b.T if trans_b else b).astype(np.float64))
        if beta:
            expected += beta * c
        assert_close(accel.to_host(out), expected, dtype, scale=np.abs(expected).max())


@pytest.mark.parametrize('dtype', DTYPES)
def test_channel_ops_and_wide_flag_match_cpu(accel, cpu, dtype):
    x, values = _random((3, 4, 6), dtype, 30), _random(4, dtype, 31) + dtype(3)
    for op in ('add', 'sub', 'mul', 'div'):
        expected = np.empty_like(x)
        cpu.channel_op(op, x, values, expected, 6)
        device_x = accel.from_host(x)
        accel.channel_op(op, device_x, accel.from_host(values), device_x, 6)   # in place
        assert_close(accel.to_host(device_x), expected)
    with pytest.raises(DeviceError, match='pow'):
        accel.channel_op('pow', device_x, accel.from_host(values), device_x, 6)
    out = np.ones(4, dtype)
    device_out = accel.from_host(out)
    cpu.channel_sum(x, out, 6, accumulate=True, wide=False)
    accel.channel_sum(accel.from_host(x), device_out, 6, accumulate=True, wide=False)
    assert_close(accel.to_host(device_out), out)


@pytest.mark.parametrize('dtype', DTYPES)
def test_eltwise_max_update_and_mask_select_match_cpu(accel, cpu, dtype):
    bottoms = [_random(50, dtype, 40 + i) for i in range(4)]
    bottoms[1][:5] = bottoms[0][:5]   # ties go to bottom 1
    bottoms[3][5:10] = bottoms[2][5:10]   # and stay with the earlier of later bottoms
    out, mask = np.empty(50, dtype), np.empty(50, np.int32)
    device_out, device_mask = accel.empty(50, dtype), accel.from_host(np.full(50, -5, np.int32))
    for index, bottom in enumerate(bottoms):
        cpu.max_update(bottom, index, out, mask)
        accel.max_update(accel.from_host(bottom), index, device_out, device_mask)
        np.testing.assert_array_equal(accel.to_host(device_out), out)
        np.testing.assert_array_equal(accel.to_host(device_mask), mask)
    dy = _random(50, dtype, 49)
    for index in range(4):
        dx = np.empty_like(dy)
        cpu.mask_select(dy, mask, index, dx)
        device_dx = accel.from_host(np.full_like(dy, np.nan))
        accel.mask_select(accel.from_host(dy), device_mask, index, device_dx)
        np.testing.assert_array_equal(accel.to_host(device_dx), dx)


@pytest.mark.parametrize('dtype', DTYPES)
def test_rows_windows_and_axis_sums_match_cpu(accel, cpu, dtype):
    table, indices = _random((6, 5), dtype, 50), np.array([4, 0, 4, 2, 4])
    out = np.full((7, 5), -1, dtype)   # more rows than indices: the rest stay
    device_out = accel.from_host(out)
    cpu.gather_rows(table, indices, out)
    accel.gather_rows(accel.from_host(table), indices, device_out)
    np.testing.assert_array_equal(accel.to_host(device_out), out)
    values = _random((5, 5), dtype, 51)
    device_table = accel.from_host(table)
    cpu.scatter_add_rows(values, indices, table)   # row 4 three times, in order
    accel.scatter_add_rows(accel.from_host(values), indices, device_table)
    assert_close(accel.to_host(device_table), table)
    source = _random((3, 4, 5, 6), dtype, 52)
    window = np.empty((2, 2, 3, 4), dtype)
    cpu.copy_window(source, window, (1, 2, 0, 1))
    device_window = accel.empty(window.shape, dtype)
    accel.copy_window(accel.from_host(source), device_window, (1, 2, 0, 1))
    np.testing.assert_array_equal(accel.to_host(device_window), window)
    back = source.copy()
    cpu.copy_window(back, window, (1, 2, 0, 1), backward=True)
    device_back = accel.from_host(source)
    accel.copy_window(device_back, device_window, (1, 2, 0, 1), backward=True)
    np.testing.assert_array_equal(accel.to_host(device_back), back)
    x = _random((3, 7, 4), dtype, 53)
    sums = np.empty((3, 4), dtype)
    cpu.sum_axis(x, sums, 3, 7, 4)
    device_sums = accel.empty((3, 4), dtype)
    accel.sum_axis(accel.from_host(x), device_sums, 3, 7, 4)
    assert_close(accel.to_host(device_sums), sums)


@pytest.mark.parametrize('dtype', DTYPES)
def test_dot_rows_matches_cpu_on_views(accel, cpu, dtype):
    """Row dot products (Reduction SUMSQ, ContrastiveLoss) on 1-D slices with offsets, a and b
    distinct and the same array; rows of 1 and of many values."""
    a, b = _random(5 + 6 * 9, dtype, 60), _random(3 + 6 * 9, dtype, 61)
    device_a, device_b = accel.from_host(a), accel.from_host(b)
    for rows in (6, 54, 1):
        expected = np.full(rows + 2, 7, dtype)
        cpu.dot_rows(a[5:], b[3:], expected[2:])
        out = accel.from_host(np.full(rows + 2, 7, dtype))
        accel.dot_rows(device_a[5:], device_b[3:], out[2:])
        assert_close(accel.to_host(out), expected)
        np.testing.assert_array_equal(accel.to_host(out)[:2], 7)   # nothing before the view
    squares = np.empty(6, dtype)
    cpu.dot_rows(a[5:], a[5:], squares)
    device_squares = accel.empty(6, dtype)
    accel.dot_rows(device_a[5:], device_a[5:], device_squares)
    assert_close(accel.to_host(device_squares), squares)
    np.testing.assert_allclose(squares, (a[5:].reshape(6, 9) ** 2).sum(axis=1), rtol=1e-5)
    accel.dot_rows(device_a[:0], device_a[:0], accel.empty(0, dtype))   # nothing to do
