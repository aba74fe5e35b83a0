"""The CUDA device's one call into cuBLAS, checked without a GPU: cct's row-major, offset, strided
and batched products (accelerator_ops.gemm_strided's contract) handed to
cublas<t>gemmStridedBatched, which is column-major, here played by a numpy model of cuBLAS's
documented semantics reading the same memory through the same pointers. What it checks is the
mapping (operand order, transpose flags, leading dimensions cuBLAS accepts, offsets and strides in
bytes); cuBLAS itself and every kernel run where a GPU is (the ``accel`` tests on cuda:0)."""
import contextlib
import ctypes
import sys
import types

import numpy as np
import pytest

from cct.devices.cuda import CUDADevice
from opencl_support import DTYPES, assert_close


def _matrix(address, dtype, rows, cols, ld):
    """The column-major rows x cols matrix at ``address`` with leading dimension ``ld``."""
    dtype = np.dtype(dtype)
    count = max((cols - 1) * ld + rows, 0)
    flat = np.frombuffer((ctypes.c_char * (count * dtype.itemsize)).from_address(address), dtype)
    strides = (dtype.itemsize, ld * dtype.itemsize)
    return np.lib.stride_tricks.as_strided(flat, (rows, cols), strides)


def fake_cublas(calls):
    """cublas<t>gemmStridedBatched as cuBLAS documents it: C_p = alpha op(A_p) op(B_p) + beta C_p,
    column-major, A_p at A + p*strideA elements; invalid leading dimensions are refused."""
    def gemm_strided_batched(dtype):
        def gemm(handle, transa, transb, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta,
                 c, ldc, stride_c, batch):
            calls.append((transa, transb, m, n, k, lda, ldb, ldc, batch))
            rows_a, rows_b = (k if transa else m), (n if transb else k)
            if lda < max(1, rows_a) or ldb < max(1, rows_b) or ldc < max(1, m):
                raise ValueError('CUBLAS_STATUS_INVALID_VALUE: lda %d ldb %d ldc %d'
                                 % (lda, ldb, ldc))
            size = np.dtype(dtype).itemsize
            alpha_value = _matrix(alpha, dtype, 1, 1, 1)[0, 0]
            beta_value = _matrix(beta, dtype, 1, 1, 1)[0, 0]
            for p in range(batch):
                op_a = _matrix(a + p * stride_a * size, dtype, rows_a, m if transa else k, lda)
                op_b = _matrix(b + p * stride_b * size, dtype, rows_b, k if transb else n, ldb)
                op_a, op_b = (op_a.T if transa else op_a), (op_b.T if transb else op_b)
                out = _matrix(c + p * stride_c * size, dtype, m, n, ldc)
                product = alpha_value * (op_a.astype(np.float64) @ op_b.astype(np.float64))
                if beta_value != 0:   # cuBLAS does not read C when beta is 0
                    product += beta_value * out
                np.copyto(out, product.astype(dtype))
        return gemm
    module = types.ModuleType('cupy_backends.cuda.libs.cublas')
    module.sgemmStridedBatched = gemm_strided_batched(np.float32)
    module.dgemmStridedBatched = gemm_strided_batched(np.float64)
    module.CUBLAS_POINTER_MODE_HOST = 0
    module.getPointerMode = lambda handle: 0
    module.setPointerMode = lambda handle, mode: None
    module.setStream = lambda handle, stream: None
    return module


class HostArray:
    """A host numpy array dressed as the CuPy array gemm_strided reads (shape, dtype, data.ptr)."""

    def __init__(self, values):
        self.values = np.array(values, order="C")   # a copy: the test keeps the original
        self.shape, self.dtype = self.values.shape, self.values.dtype
        self.data = types.SimpleNamespace(ptr=self.values.ctypes.data)


@pytest.fixture
def device(monkeypatch):
    calls = []
    cublas = fake_cublas(calls)
    libs = types.ModuleType('cupy_backends.cuda.libs')
    libs.cublas = cublas
    monkeypatch.setitem(sys.modules, 'cupy_backends.cuda.libs', libs)
    monkeypatch.setitem(sys.modules, 'cupy_backends.cuda.libs.cublas', cublas)
    cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(
        device=types.SimpleNamespace(get_cublas_handle=lambda: 1)))
    device = object.__new__(CUDADevice)   # no GPU: only what gemm_strided reads
    device.runtime = types.SimpleNamespace(gemm_kernel='cublas', device=contextlib.nullcontext(),
                                           cupy=cupy, stream=lambda: types.SimpleNamespace(ptr=0))
    device.calls = calls
    return device


def reference(m, n, k, alpha, a, offset_a, lda, trans_a, stride_a, b, offset_b, ldb, trans_b,
              stride_b, beta, c, offset_c, ldc, stride_c, batch):
    """gemm_strided's contract, row-major, read straight from the flat arrays."""
    c = c.copy()
    for p in range(batch):
        def read(flat, offset, rows, cols, ld):
            matrix = np.zeros((rows, cols), flat.dtype)
            for i in range(rows):
                matrix[i] = flat[offset + i * ld:offset + i * ld + cols]
            return matrix
        op_a = read(a, offset_a + p * stride_a, *((k, m) if trans_a else (m, k)), lda)
        op_b = read(b, offset_b + p * stride_b, *((n, k) if trans_b else (k, n)), ldb)
        op_a, op_b = (op_a.T if trans_a else op_a), (op_b.T if trans_b else op_b)
        for i in range(m):
            for j in range(n):
                at = offset_c + p * stride_c + i * ldc + j
                c[at] = alpha * (op_a[i] @ op_b[:, j]) + (beta * c[at] if beta else 0)
    return c


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('trans_a,trans_b', [(False, False), (True, False), (False, True),
                                             (True, True)])
def test_gemm_through_cublas(device, dtype, trans_a, trans_b):
    rng = np.random.default_rng(3)
    m, n, k = 5, 7, 3
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    out = HostArray(c)
    device.gemm(HostArray(a), HostArray(b), out, trans_a, trans_b, alpha=0.5, beta=2.0)
    expected = 0.5 * ((a.T if trans_a else a) @ (b.T if trans_b else b)) + 2.0 * c
    assert_close(out.values, expected, dtype)
    assert device.calls == [(int(trans_b), int(trans_a), n, m, k, b.shape[1], a.shape[1], n, 1)]


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('case', [
    # conv_forward: out[first + p, g-block] = weights[g] @ col[g-rows, p-columns], 3 images
    dict(m=4, n=6, k=5, a=(0, 5, False, 0), b=(5, 18, False, 6), c=(8, 6, 48, 3), beta=0.0),
    # conv_backward_data: col = weights[g]^T @ rows[p], a partition of 2
    dict(m=5, n=6, k=4, a=(20, 5, True, 0), b=(12, 6, False, 24), c=(0, 12, 6, 2), beta=0.0),
    # conv_backward_weights: weight_diff[g] += packed[g] @ col[g-rows]^T, accumulating
    dict(m=4, n=5, k=12, a=(0, 12, False, 0), b=(60, 12, True, 0), c=(3, 5, 0, 1), beta=1.0),
    # k = 0 (an empty sum): C = beta C, with leading dimensions of 0 made valid for cuBLAS
    dict(m=3, n=2, k=0, a=(0, 0, False, 0), b=(0, 2, False, 0), c=(0, 2, 0, 1), beta=0.5),
])
def test_strided_batched_products_with_offsets(device, dtype, case):
    rng = np.random.default_rng(5)
    a, b, c = (rng.standard_normal(size).astype(dtype) for size in (80, 160, 160))
    (offset_a, lda, trans_a, stride_a), (offset_b, ldb, trans_b, stride_b) = case['a'], case['b']
    offset_c, ldc, stride_c, batch = case['c']
    m, n, k, beta = case['m'], case['n'], case['k'], case['beta']
    expected = reference(m, n, k, 1.5, a, offset_a, lda, trans_a, stride_a, b, offset_b, ldb,
                         trans_b, stride_b, beta, c, offset_c, ldc, stride_c, batch)
    out = HostArray(c)
    device.gemm_strided(m, n, k, 1.5, HostArray(a), offset_a, lda, trans_a, stride_a, HostArray(b),
                        offset_b, ldb, trans_b, stride_b, beta, out, offset_c, ldc, stride_c, batch)
    assert_close(out.values, expected, dtype)
    assert len(device.calls) == 1 and device.calls[0][-1] == batch
