"""The OpenCL runtime under cct's OpenCL device: one context and in-order queue per device, programs
built once per (family, dtype) and cached in memory and on disk, kernel launches, and allocations
checked against the device's limits.

The disk cache holds program binaries keyed by the program's text, build options and the device
(platform, device name, driver version); a binary the driver refuses is rebuilt from source. Builds
that fail raise ``DeviceError`` with the source's name, the kernels the errors point into and the
compiler's log.
"""
import os
import tempfile
import threading

import numpy as np

from cct.errors import DeviceError
from cct.kernels import gpu
from cct.kernels.gpu.launch import (GEMM_GEOMETRY, GROUP, INT_LIMIT, MAX_GROUPS,  # noqa: F401
                                    KernelRuntime, check_count, size_text)

_lock = threading.Lock()
_runtimes = {}


def cache_dir():
    """Where built programs are kept: $CCT_KERNEL_CACHE, else $XDG_CACHE_HOME/cct/opencl."""
    path = os.environ.get('CCT_KERNEL_CACHE')
    if not path:
        base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
        path = os.path.join(base, 'cct', 'opencl')
    return path


def devices():
    """Every OpenCL device of every platform, in platform order (cct's opencl:N numbering)."""
    import pyopencl as cl
    found = []
    for platform in cl.get_platforms():
        try:
            found.extend(platform.get_devices())
        except cl.Error:
            continue   # a platform with no device of any type raises DEVICE_NOT_FOUND
    return found


def runtime(device=None):
    """The process's ``Runtime`` for a pyopencl device (default: the first OpenCL device)."""
    if device is None:
        listed = devices()
        if not listed:
            raise DeviceError('no OpenCL device found')
        device = listed[0]
    key = device.int_ptr
    with _lock:
        if key not in _runtimes:
            _runtimes[key] = Runtime(device)
        return _runtimes[key]


class Runtime(KernelRuntime):
    """A device's context, queue, built programs and allocation checks."""

    def __init__(self, device):
        import pyopencl as cl
        self.cl = cl
        self.device = device
        self.context = cl.Context([device])
        self.queue = cl.CommandQueue(self.context)
        self.has_fp64 = 'cl_khr_fp64' in device.extensions
        self.max_alloc = device.max_mem_alloc_size
        self.memory = device.global_mem_size
        self.compute_units = device.max_compute_units
        # The GEMM kernel: local-memory tiles on GPUs, the barrier-free one on CPUs (see gemm.cl).
        self.gemm_kernel = 'gemm_direct' if device.type & cl.device_type.CPU else 'gemm'
        self._programs = {}
        self._kernels = {}
        self._identity = (device.platform.name, device.platform.version, device.name,
                          device.driver_version, cl.VERSION_TEXT)
        self.label = 'OpenCL device %r' % device.name

    # ---------------------------------------------------------------- programs
    def options(self, dtype):
        return gpu.defines(dtype, accumulate_double=self.has_fp64)

    def program(self, family, dtype, use_cache=True):
        """``family``'s program for ``dtype`` on this device, built once per process."""
        dtype = np.dtype(dtype)
        key = (family, dtype)
        program = self._programs.get(key) if use_cache else None
        if program is None:
            if dtype == np.float64 and not self.has_fp64:
                raise DeviceError('OpenCL device %r has no double precision (cl_khr_fp64): '
                                  'float64 nets cannot run on it' % self.device.name)
            program = self._build(family, dtype, use_cache)
            self._programs[key] = program
        return program

    def _build(self, family, dtype, use_cache):
        cl = self.cl
        text = gpu.source(family)
        options = self.options(dtype)
        path = os.path.join(cache_dir(), gpu.source_hash(text, options, *self._identity) + '.bin')
        if use_cache and os.path.exists(path):
            try:
                with open(path, 'rb') as f:
                    binary = f.read()
                return cl.Program(self.context, [self.device], [binary]).build(options=options)
            except (OSError, cl.Error):
                pass   # a stale or foreign binary: build from source and replace it below
        program = cl.Program(self.context, text)
        try:
            program.build(options=options)
        except cl.Error as error:
            log = _build_log(cl, program, self.device, error)
            kernels = gpu.kernels_in_log(family, log)
            raise DeviceError('OpenCL kernel source %s (%s) failed to compile on %s%s:\n%s'
                              % (gpu.source_name(family), dtype.name, self.device.name,
                                 ' in kernel %s' % ', '.join(kernels) if kernels else '',
                                 log.strip())) from None
        if use_cache:
            _write_atomic(path, program.get_info(cl.program_info.BINARIES)[0])
        return program

    def kernel(self, family, name, dtype):
        """The kernel ``name`` of ``family`` for ``dtype`` (one object per process, args set per call)."""
        key = (family, name, np.dtype(dtype))
        kernel = self._kernels.get(key)
        if kernel is None:
            kernel = self._kernels[key] = getattr(self.program(family, dtype), name)
        return kernel

    # ---------------------------------------------------------------- launches
    def _enqueue(self, family, name, dtype, groups, local_size, args):
        kernel = self.kernel(family, name, dtype)
        global_size = tuple(g * l for g, l in zip(groups, local_size))
        try:
            kernel(self.queue, global_size, local_size, *args)
        except self.cl.MemoryError as error:
            # Drivers allocate buffers lazily: memory runs out at the first launch that uses them.
            raise DeviceError('OpenCL device %r ran out of memory running kernel %s of %s: %s'
                              % (self.device.name, name, gpu.source_name(family),
                                 error)) from None

    # ---------------------------------------------------------------- memory
    def empty(self, shape, dtype, what=None):
        import pyopencl.array as cl_array
        _, nbytes = self.check_empty(shape, dtype, what)
        try:
            return cl_array.Array(self.queue, shape, dtype)
        except self.cl.MemoryError as error:
            raise DeviceError('cannot allocate %s%s on %s: %s'
                              % (size_text(nbytes), ' for %s' % what if what else '',
                                 self.label, error)) from None

    def write(self, host, out):
        """Copy the contiguous host array ``host`` into device array ``out`` (same size)."""
        self.cl.enqueue_copy(self.queue, out.base_data, host, dst_offset=out.offset)

    def read(self, array, host):
        """Copy device array ``array`` into the contiguous host array ``host``; waits for it."""
        self.cl.enqueue_copy(self.queue, host, array.base_data, src_offset=array.offset)

    def copy(self, source, out):
        """Copy device array ``source`` into ``out`` (same size), in queue order."""
        self.cl.enqueue_copy(self.queue, out.base_data, source.base_data,
                             src_offset=source.offset, dst_offset=out.offset,
                             byte_count=source.nbytes)

    def fill_raw(self, out, value):
        """Set every element of ``out`` (any element type: masks, labels) to ``value``."""
        self.cl.enqueue_fill_buffer(self.queue, out.base_data, np.array([value], out.dtype),
                                    out.offset, out.nbytes)

    def synchronize(self):
        self.queue.finish()

    @staticmethod
    def arg(array):
        return arg(array)

    @staticmethod
    def same_memory(a, b):
        """Whether device arrays ``a`` and ``b`` start at the same place."""
        return a.base_data == b.base_data and a.offset == b.offset


def arg(array):
    """A device array as a kernel's (buffer, element offset) pair."""
    return array.base_data, np.int32(array.offset // array.dtype.itemsize)


def _build_log(cl, program, device, error):
    """The compiler's own log of a failed build (pyopencl's error text when the driver keeps none)."""
    try:
        log = program.get_build_info(device, cl.program_build_info.LOG)
    except cl.Error:
        log = ''
    return log if log and log.strip() else str(error)


def _write_atomic(path, data):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix='.tmp')
        with os.fdopen(handle, 'wb') as f:
            f.write(data)
        os.replace(temporary, path)
    except OSError:
        pass   # an unwritable cache only costs the next process a build
