"""The CUDA runtime under cct's CUDA device: CuPy arrays on one GPU, the kernel sources of this
folder compiled as CUDA C by CuPy's ``RawModule`` (NVRTC) once per (family, dtype) per device, and
launches on the device's current CuPy stream.

CuPy keeps the compiled modules in memory and on disk (``~/.cupy/kernel_cache``, or
``$CUPY_CACHE_DIR``), keyed by the source, the options and the GPU's architecture, so a second
process does not compile again. A build that fails raises ``DeviceError`` with the source's name,
the kernels the errors point into and NVRTC's log, as the OpenCL runtime's builds do.
"""
import threading

import numpy as np

from cct.errors import DeviceError
from cct.kernels import gpu
from cct.kernels.gpu.launch import KernelRuntime, size_text

_lock = threading.Lock()
_runtimes = {}


def runtime(index):
    """The process's ``Runtime`` for CUDA device ``index``."""
    with _lock:
        if index not in _runtimes:
            _runtimes[index] = Runtime(index)
        return _runtimes[index]


def properties(index):
    """CUDA's device properties of GPU ``index`` (a dict, names decoded)."""
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(index)
    name = props['name']
    return dict(props, name=name.decode() if isinstance(name, bytes) else name)


class Runtime(KernelRuntime):
    """One GPU's CuPy device, compiled modules, launches and copies."""

    # cuBLAS does the GEMMs (cuda.py); gemm.cl's kernels run only when a test asks for them.
    gemm_kernel = 'cublas'

    def __init__(self, index):
        import cupy
        self.cupy = cupy
        self.index = index
        self.device = cupy.cuda.Device(index)
        props = properties(index)
        self.name = props['name']
        self.label = 'CUDA device %d %r' % (index, self.name)
        self.compute_capability = '%d.%d' % (props['major'], props['minor'])
        self.has_fp64 = True
        self.memory = self.max_alloc = int(props['totalGlobalMem'])
        self.compute_units = int(props['multiProcessorCount'])
        self._modules = {}
        self._kernels = {}

    # ---------------------------------------------------------------- programs
    def options(self, dtype):
        return tuple(gpu.defines(dtype, accumulate_double=True))

    def module(self, family, dtype):
        """``family``'s RawModule for ``dtype`` (compiled when its first kernel is asked for)."""
        key = (family, np.dtype(dtype))
        module = self._modules.get(key)
        if module is None:
            module = self._modules[key] = self.cupy.RawModule(
                code=gpu.source(family), options=self.options(dtype))
        return module

    def kernel(self, family, name, dtype):
        """The kernel ``name`` of ``family`` for ``dtype``, compiled on first use."""
        key = (family, name, np.dtype(dtype))
        kernel = self._kernels.get(key)
        if kernel is None:
            from cupy.cuda.compiler import CompileException
            try:
                with self.device:
                    kernel = self.module(family, dtype).get_function(name)
            except CompileException as error:
                self._modules.pop((family, np.dtype(dtype)), None)
                log = error.get_message()
                kernels = gpu.kernels_in_log(family, log)
                raise DeviceError('CUDA kernel source %s (%s) failed to compile on %s%s:\n%s'
                                  % (gpu.source_name(family), np.dtype(dtype).name, self.label,
                                     ' in kernel %s' % ', '.join(kernels) if kernels else '',
                                     log.strip())) from None
            except Exception as error:  # noqa: BLE001 - no NVRTC, a driver refusing the binary
                self._modules.pop((family, np.dtype(dtype)), None)
                raise DeviceError('CUDA kernel source %s (%s) could not be built for %s: %s: %s'
                                  % (gpu.source_name(family), np.dtype(dtype).name, self.label,
                                     type(error).__name__, error)) from None
            self._kernels[key] = kernel
        return kernel

    def _enqueue(self, family, name, dtype, groups, local_size, args):
        kernel = self.kernel(family, name, dtype)
        if len(groups) == 3 and groups[2] > 65535:
            raise DeviceError('kernel %s of %s: %d products in one launch exceed CUDA\'s 65535 '
                              'blocks along z' % (name, gpu.source_name(family), groups[2]))
        with self.device:
            kernel(tuple(groups), tuple(local_size), args)

    # ---------------------------------------------------------------- memory
    def empty(self, shape, dtype, what=None):
        _, nbytes = self.check_empty(shape, dtype, what)
        try:
            with self.device:
                return self.cupy.empty(shape, dtype)
        except self.cupy.cuda.memory.OutOfMemoryError as error:
            raise DeviceError('cannot allocate %s%s on %s: %s'
                              % (size_text(nbytes), ' for %s' % what if what else '',
                                 self.label, error)) from None

    def stream(self):
        """The CuPy stream this device's work goes to (the current one: CuPy's null stream unless
        a script chose another)."""
        with self.device:
            return self.cupy.cuda.get_current_stream()

    def write(self, host, out):
        """Copy the contiguous host array ``host`` into device array ``out`` (same size). CUDA
        has staged pageable host memory before the call returns, so ``host`` may change after."""
        with self.device:
            out.data.copy_from_host_async(host.ctypes.data, host.nbytes, self.stream())

    def read(self, array, host):
        """Copy device array ``array`` into the contiguous host array ``host``; waits for it."""
        with self.device:
            stream = self.stream()
            array.data.copy_to_host_async(host.ctypes.data, array.nbytes, stream)
            stream.synchronize()

    def copy(self, source, out):
        """Copy device array ``source`` into ``out`` (same size), in stream order."""
        with self.device:
            out.data.copy_from_device_async(source.data, source.nbytes, self.stream())

    def fill_raw(self, out, value):
        """Set every element of ``out`` (any element type: masks, labels) to ``value``."""
        with self.device:
            out.fill(value)

    def synchronize(self):
        self.device.synchronize()

    @staticmethod
    def arg(array):
        # A CuPy array is passed as the pointer to its first element (views included): offset 0.
        return array, np.int32(0)

    @staticmethod
    def same_memory(a, b):
        """Whether device arrays ``a`` and ``b`` start at the same place."""
        return a.data.ptr == b.data.ptr

    def memory_in_use(self):
        """(bytes CuPy's pool holds now, bytes it hands out), for benchmarks' peak memory."""
        pool = self.cupy.get_default_memory_pool()
        return pool.total_bytes(), pool.used_bytes()
