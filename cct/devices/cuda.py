"""The CUDA device: CuPy arrays, GEMM through cuBLAS, and every other primitive from the same kernel
sources the OpenCL device runs (cct/kernels/gpu), compiled as CUDA C by CuPy's NVRTC.

Everything but the GEMM is accelerator.py's code over the CUDA runtime
(cct/kernels/gpu/cuda_runtime.py), the code CI runs on OpenCL; this module adds cuBLAS and the
backend's entry points. Needs the ``cuda`` extra (CuPy for CUDA 13 with its toolkit libraries).
"""
import numpy as np

from cct.devices.accelerator import AcceleratorDevice
from cct.errors import DeviceError, install_hint
from cct.kernels.gpu import CUDA_REQUIREMENTS


class CUDADevice(AcceleratorDevice):
    """One CUDA GPU: its runtime (CuPy device, compiled modules) and the primitives on it."""

    kind = 'cuda'

    def __init__(self, index):
        from cct.kernels.gpu import cuda_runtime
        try:   # CuPy loads cuBLAS lazily: a wheel without the toolkit would fail at the first GEMM
            from cupy_backends.cuda.libs import cublas  # noqa: F401
        except Exception as error:  # noqa: BLE001 - pathfinder's, the loader's: all mean missing
            raise DeviceError('cuda:%d cannot be used: cuBLAS does not load (%s): %s'
                              % (index, str(error).splitlines()[0],
                                 install_hint('cuda', *CUDA_REQUIREMENTS))) from None
        super().__init__(index, cuda_runtime.runtime(index))

    def describe(self):
        from cct.kernels.gpu import cuda_runtime
        cupy = self.runtime.cupy
        props = cuda_runtime.properties(self.index)
        driver = cupy.cuda.runtime.driverGetVersion()
        runtime = cupy.cuda.runtime.runtimeGetVersion()
        return {'name': props['name'], 'memory': int(props['totalGlobalMem']),
                'compute_units': int(props['multiProcessorCount']),
                'compute_capability': self.runtime.compute_capability,
                'driver': '%d.%d' % (driver // 1000, driver % 1000 // 10),
                'runtime': '%d.%d' % (runtime // 1000, runtime % 1000 // 10),
                'cupy': cupy.__version__, 'double': 'yes'}

    def gemm_strided(self, m, n, k, alpha, a, offset_a, lda, trans_a, stride_a, b, offset_b, ldb,
                     trans_b, stride_b, beta, c, offset_c, ldc, stride_c, batch):
        """accelerator_ops' strided, batched GEMM as one cuBLAS call (gemm.cl's kernels when
        ``runtime.gemm_kernel`` names one: the tests run them on GPUs so). cuBLAS runs in its
        default math mode, full float32: CuPy asks for TF32 only under CUPY_TF32=1, which would
        not hold the float32 parity of 1e-4."""
        if self.runtime.gemm_kernel != 'cublas':
            return super().gemm_strided(m, n, k, alpha, a, offset_a, lda, trans_a, stride_a, b,
                                        offset_b, ldb, trans_b, stride_b, beta, c, offset_c, ldc,
                                        stride_c, batch)
        if m == 0 or n == 0 or batch == 0:
            return
        from cupy_backends.cuda.libs import cublas
        dtype = c.dtype
        gemm = cublas.dgemmStridedBatched if dtype == np.float64 else cublas.sgemmStridedBatched
        size = dtype.itemsize
        scalars = np.array([alpha, beta], dtype)
        with self.runtime.device:
            handle = self.runtime.cupy.cuda.device.get_cublas_handle()
            cublas.setStream(handle, self.runtime.stream().ptr)   # in order with the kernels
            mode = cublas.getPointerMode(handle)
            cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
            try:
                # Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLAS gets B
                # first, each with its own transpose flag, and n, m swapped.
                gemm(handle, int(bool(trans_b)), int(bool(trans_a)), n, m, k,
                     scalars.ctypes.data, b.data.ptr + offset_b * size, max(ldb, 1), stride_b,
                     a.data.ptr + offset_a * size, max(lda, 1), stride_a,
                     scalars.ctypes.data + size, c.data.ptr + offset_c * size, max(ldc, 1),
                     stride_c, batch)
            finally:
                cublas.setPointerMode(handle, mode)


# ---------------------------------------------------------------- the backend (devices/__init__.py)
_DEVICES = {}


def _count():
    import cupy
    return cupy.cuda.runtime.getDeviceCount()


def count():
    """How many CUDA devices exist here (0 when CuPy, the driver or a GPU is missing)."""
    try:
        return _count()
    except Exception:  # noqa: BLE001 - no CuPy, no driver, an old driver, no GPU: all mean none
        return 0


def unavailable():
    """Why there is no CUDA device here, or None."""
    try:
        import cupy  # noqa: F401
    except ModuleNotFoundError as error:
        if error.name != 'cupy':
            return 'CuPy failed to import (%s): %s' % (error, install_hint('cuda',
                                                                          *CUDA_REQUIREMENTS))
        return 'CuPy is not installed: %s' % install_hint('cuda', *CUDA_REQUIREMENTS)
    except Exception as error:  # noqa: BLE001 - a broken install (its libraries fail to load)
        return 'CuPy failed to import (%s): %s' % (str(error).splitlines()[0],
                                                  install_hint('cuda', *CUDA_REQUIREMENTS))
    try:
        found = _count()
    except Exception as error:  # noqa: BLE001 - the CUDA runtime's own reason
        return 'the CUDA runtime reports %s' % (str(error).splitlines()[0] or type(error).__name__)
    return None if found else 'the CUDA runtime lists no GPU'


def open_device(index):
    """``cuda:index``, opened once per process."""
    if index not in _DEVICES:
        available = count()
        if not 0 <= index < available:
            raise DeviceError('cuda:%d does not exist (%d CUDA devices)' % (index, available))
        _DEVICES[index] = CUDADevice(index)
    return _DEVICES[index]
