"""What the accelerator tests share: the devices (each test that takes ``accel`` runs on opencl:0
and on cuda:0, skipping with the reason where one does not exist) and the acceptance tolerance
(float64 1e-10, float32 1e-4, relative to the largest expected value)."""
import numpy as np
import pytest

TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}
DTYPES = (np.float32, np.float64)


# The accelerator kinds every parity, gradient-check, net and solver test runs on.
ACCELERATORS = ('opencl', 'cuda')
_KIND_NAMES = {'opencl': 'OpenCL', 'cuda': 'CUDA'}


def accelerator_device(kind):
    """``kind``:0, or a skip naming why this machine has none (CI has no CUDA GPU)."""
    from cct import devices
    if devices.count(kind) == 0:
        pytest.skip('no %s device: %s' % (_KIND_NAMES[kind], devices.unavailable(kind)))
    return devices.get_device('%s:0' % kind)


def opencl_device():
    return accelerator_device('opencl')


def assert_close(actual, expected, dtype=None, scale=None):
    """``actual`` equals ``expected`` to the dtype's tolerance, relative to the larger of 1 and the
    largest |expected| (so values near zero are held to the same absolute error as large ones)."""
    expected = np.asarray(expected)
    tolerance = TOLERANCE[np.dtype(dtype or expected.dtype)]
    magnitude = scale if scale is not None else max(1.0, float(np.abs(expected).max(initial=0)))
    np.testing.assert_allclose(actual, expected, rtol=tolerance, atol=tolerance * magnitude)


@pytest.fixture(scope='session')
def ocl():
    """opencl:0, one per session (so each kernel program is built once per test session): the
    tests of the OpenCL runtime itself."""
    return opencl_device()


@pytest.fixture(scope='session', params=ACCELERATORS)
def accel(request):
    """opencl:0, then cuda:0 (each one per session): the device a parity test runs on."""
    return accelerator_device(request.param)


@pytest.fixture(scope='session')
def cpu():
    """The CPU device, the reference of every primitive."""
    from cct.devices import get_device
    return get_device('cpu')


@pytest.fixture(params=['gemm', 'gemm_direct'])
def each_gemm(request, accel):
    """Runs a test once with each GEMM kernel of gemm.cl (OpenCL picks one by the device's type: the
    tiled one on GPUs, the barrier-free one on CPUs), so CI on PoCL checks the kernel GPUs run too.
    On CUDA, where cuBLAS does the GEMMs, the same runs check gemm.cl's kernels as CUDA C; the
    other tests check cuBLAS."""
    chosen = accel.runtime.gemm_kernel
    accel.runtime.gemm_kernel = request.param
    yield request.param
    accel.runtime.gemm_kernel = chosen
