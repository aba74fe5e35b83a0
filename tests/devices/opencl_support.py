"""What the OpenCL tests share: the device (skipping, with the reason, where no OpenCL device exists)
and the acceptance tolerance (float64 1e-10, float32 1e-4, relative to the largest expected value)."""
import numpy as np
import pytest

TOLERANCE = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}
DTYPES = (np.float32, np.float64)


def opencl_device():
    from cct import devices
    if devices.count('opencl') == 0:
        pytest.skip('no OpenCL device: %s' % devices.unavailable('opencl'))
    return devices.get_device('opencl:0')


def assert_close(actual, expected, dtype=None, scale=None):
    """``actual`` equals ``expected`` to the dtype's tolerance, relative to the larger of 1 and the
    largest |expected| (so values near zero are held to the same absolute error as large ones)."""
    expected = np.asarray(expected)
    tolerance = TOLERANCE[np.dtype(dtype or expected.dtype)]
    magnitude = scale if scale is not None else max(1.0, float(np.abs(expected).max(initial=0)))
    np.testing.assert_allclose(actual, expected, rtol=tolerance, atol=tolerance * magnitude)


@pytest.fixture(scope='session')
def ocl():
    """opencl:0, one per session (so each kernel program is built once per test session)."""
    return opencl_device()


@pytest.fixture(scope='session')
def cpu():
    """The CPU device, the reference of every primitive."""
    from cct.devices import get_device
    return get_device('cpu')


@pytest.fixture(params=['gemm', 'gemm_direct'])
def each_gemm(request, ocl):
    """Runs a test once with each GEMM kernel of gemm.cl (the device picks one by its type: the tiled
    one on GPUs, the barrier-free one on CPUs), so CI on PoCL checks the kernel GPUs run too."""
    chosen = ocl.runtime.gemm_kernel
    ocl.runtime.gemm_kernel = request.param
    yield request.param
    ocl.runtime.gemm_kernel = chosen
