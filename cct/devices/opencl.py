"""The OpenCL device: PyOpenCL arrays and cct's kernel sources (cct/kernels/gpu) behind the Device
primitives, on any OpenCL device (GPUs of every vendor; PoCL runs it on the CPU in CI).

Every primitive is accelerator.py's, over the OpenCL runtime (cct/kernels/gpu/cl_runtime.py: one
context and in-order queue per device, programs built once and cached on disk).
"""
from cct.devices.accelerator import AcceleratorDevice
from cct.errors import DeviceError, install_hint


class OpenCLDevice(AcceleratorDevice):
    """One OpenCL device: its runtime (context, queue, programs) and the primitives on it."""

    kind = 'opencl'

    def __init__(self, index, cl_device):
        from cct.kernels.gpu import cl_runtime
        super().__init__(index, cl_runtime.runtime(cl_device))
        self.queue = self.runtime.queue

    def describe(self):
        device = self.runtime.device
        return {'name': device.name, 'memory': device.global_mem_size,
                'compute_units': device.max_compute_units,
                'platform': '%s (%s)' % (device.platform.name, device.platform.version),
                'version': device.version, 'driver': device.driver_version,
                'max_allocation': device.max_mem_alloc_size,
                'double': 'yes' if self.runtime.has_fp64 else 'no'}


# ---------------------------------------------------------------- the backend (devices/__init__.py)
_DEVICES = {}


def _listed():
    from cct.kernels.gpu import cl_runtime
    return cl_runtime.devices()


def count():
    """How many OpenCL devices exist here (0 when PyOpenCL or every driver is missing)."""
    try:
        return len(_listed())
    except Exception:  # noqa: BLE001 - no library, no ICD, no platform: all mean none
        return 0


def unavailable():
    """Why there is no OpenCL device here, or None."""
    try:
        import pyopencl  # noqa: F401
    except ImportError:
        return 'pyopencl is not installed: %s' % install_hint(
            'opencl', 'pyopencl>=2024.1', 'pocl-binary-distribution>=3.0')
    try:
        found = _listed()
    except Exception as error:  # noqa: BLE001
        return 'no OpenCL platform: %s (pip install pocl-binary-distribution for a CPU one)' % (
            str(error).splitlines()[0],)
    return None if found else 'the OpenCL platforms here list no device'


def open_device(index):
    """``opencl:index``, opened once per process."""
    if index not in _DEVICES:
        listed = _listed()
        if not 0 <= index < len(listed):
            raise DeviceError('opencl:%d does not exist (%d OpenCL devices)' % (index, len(listed)))
        _DEVICES[index] = OpenCLDevice(index, listed[index])
    return _DEVICES[index]
