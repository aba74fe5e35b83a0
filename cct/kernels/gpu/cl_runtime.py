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

# Work-items per group of the one-dimensional kernels: the prelude's REDUCE_SIZE, and one size for
# every launch, since PoCL compiles a kernel again for each new work-group size.
GROUP = 64
# The most work-groups a one-dimensional launch asks for; KERNEL_LOOP strides over the rest.
MAX_GROUPS = 4096
# gemm.cl's launches: work-groups of (threads along m, along n) computing a (tile_m, tile_n) block of C.
GEMM_GEOMETRY = {name: gpu.gemm_geometry(name) for name in ('gemm', 'gemm_direct')}
INT_LIMIT = 2 ** 31 - 1

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


class Runtime:
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
    def launch(self, family, name, dtype, work, *args):
        """Run a KERNEL_LOOP kernel over ``work`` items (groups of GROUP, at most MAX_GROUPS)."""
        if work <= 0:
            return
        check_count(work, '%s.%s' % (family, name))
        groups = min((work + GROUP - 1) // GROUP, MAX_GROUPS)
        self._enqueue(family, name, dtype, (groups * GROUP,), (GROUP,), args)

    def launch_groups(self, family, name, dtype, groups, *args):
        """Run a kernel that reduces in local memory: ``groups`` work-groups of GROUP items."""
        self._enqueue(family, name, dtype, (groups * GROUP,), (GROUP,), args)

    def launch_gemm(self, dtype, m, n, batch, *args):
        (threads_m, threads_n), (tile_m, tile_n) = GEMM_GEOMETRY[self.gemm_kernel]
        tiles_m, tiles_n = -(-m // tile_m), -(-n // tile_n)
        self._enqueue('gemm', self.gemm_kernel, dtype,
                      (tiles_n * threads_n, tiles_m * threads_m, batch), (threads_n, threads_m, 1),
                      args)

    def _enqueue(self, family, name, dtype, global_size, local_size, args):
        kernel = self.kernel(family, name, dtype)
        try:
            kernel(self.queue, global_size, local_size, *args)
        except self.cl.MemoryError as error:
            # Drivers allocate buffers lazily: memory runs out at the first launch that uses them.
            raise DeviceError('OpenCL device %r ran out of memory running kernel %s of %s: %s'
                              % (self.device.name, name, gpu.source_name(family),
                                 error)) from None

    # ---------------------------------------------------------------- memory
    def check_alloc(self, nbytes, what=None):
        """Refuse an allocation the device cannot hold, naming its size and ``what`` it was for."""
        limit = min(self.max_alloc, self.memory)
        if nbytes > limit:
            raise DeviceError('cannot allocate %s%s on OpenCL device %r: it allows at most %s in one '
                              'buffer (%s of memory in all)'
                              % (_size(nbytes), ' for %s' % what if what else '', self.device.name,
                                 _size(self.max_alloc), _size(self.memory)))

    def empty(self, shape, dtype, what=None):
        import pyopencl.array as cl_array
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        nbytes = count * dtype.itemsize
        self.check_alloc(nbytes, what)
        check_count(count, 'an array%s' % (' for %s' % what if what else ''))
        try:
            return cl_array.Array(self.queue, shape, dtype)
        except self.cl.MemoryError as error:
            raise DeviceError('cannot allocate %s%s on OpenCL device %r: %s'
                              % (_size(nbytes), ' for %s' % what if what else '',
                                 self.device.name, error)) from None


def arg(array):
    """A device array as a kernel's (buffer, element offset) pair."""
    return array.base_data, np.int32(array.offset // array.dtype.itemsize)


def check_count(count, what):
    """The kernels index in int: refuse work of 2^31 items or more, naming it."""
    if count > INT_LIMIT:
        raise DeviceError('%s: %d elements exceed the OpenCL kernels\' 32-bit indexing (2^31 - 1)'
                          % (what, count))


def _size(nbytes):
    for unit, scale in (('GiB', 2 ** 30), ('MiB', 2 ** 20), ('KiB', 2 ** 10)):
        if nbytes >= scale:
            return '%d bytes (%.1f %s)' % (nbytes, nbytes / scale, unit)
    return '%d bytes' % nbytes


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
