"""What cct's two kernel runtimes share (cl_runtime.py for OpenCL, cuda_runtime.py for CUDA): the
launch geometry of the kernel sources, the 32-bit index limit and the allocation checks.

A runtime subclasses ``KernelRuntime`` and supplies the backend's few verbs (the interface the
accelerator device in cct/devices/accelerator.py is written against): ``kernel`` (a built kernel
by family, name and dtype), ``_enqueue`` (run it on work-groups), ``empty``, ``write``/``read``
(host to device and back), ``copy`` (device to device), ``fill_raw`` (any element type),
``synchronize``, ``arg`` (an array as a kernel's pointer and element offset) and ``same_memory``;
and the attributes ``label`` (the device in messages), ``has_fp64``, ``max_alloc``, ``memory``,
``compute_units`` and ``gemm_kernel``.
"""
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


class KernelRuntime:
    """Launch geometry and allocation checks over a backend's ``_enqueue`` and limits."""

    label = 'accelerator'
    gemm_kernel = 'gemm'

    def launch(self, family, name, dtype, work, *args):
        """Run a KERNEL_LOOP kernel over ``work`` items (groups of GROUP, at most MAX_GROUPS)."""
        if work <= 0:
            return
        check_count(work, '%s.%s' % (family, name))
        groups = min((work + GROUP - 1) // GROUP, MAX_GROUPS)
        self._enqueue(family, name, dtype, (groups,), (GROUP,), args)

    def launch_groups(self, family, name, dtype, groups, *args):
        """Run a kernel that reduces in local memory: ``groups`` work-groups of GROUP items."""
        self._enqueue(family, name, dtype, (groups,), (GROUP,), args)

    def launch_gemm(self, dtype, m, n, batch, *args):
        """Run gemm.cl's ``gemm_kernel`` over an m x n product, ``batch`` products at once."""
        (threads_m, threads_n), (tile_m, tile_n) = GEMM_GEOMETRY[self.gemm_kernel]
        tiles_m, tiles_n = -(-m // tile_m), -(-n // tile_n)
        self._enqueue('gemm', self.gemm_kernel, dtype, (tiles_n, tiles_m, batch),
                      (threads_n, threads_m, 1), args)

    def _enqueue(self, family, name, dtype, groups, local_size, args):
        """Run kernel ``name`` of ``family`` on ``groups`` work-groups (per dimension) of
        ``local_size`` work-items."""
        raise NotImplementedError

    def check_alloc(self, nbytes, what=None):
        """Refuse an allocation the device cannot hold, naming its size and ``what`` it was for."""
        limit = min(self.max_alloc, self.memory)
        if nbytes > limit:
            raise DeviceError('cannot allocate %s%s on %s: it allows at most %s in one '
                              'buffer (%s of memory in all)'
                              % (size_text(nbytes), ' for %s' % what if what else '', self.label,
                                 size_text(self.max_alloc), size_text(self.memory)))

    def check_empty(self, shape, dtype, what):
        """(count, nbytes) of a new array, after the allocation and index checks."""
        count = int(np.prod(shape, dtype=np.int64))
        nbytes = count * np.dtype(dtype).itemsize
        self.check_alloc(nbytes, what)
        check_count(count, 'an array%s' % (' for %s' % what if what else ''))
        return count, nbytes


def check_count(count, what):
    """The kernels index in int: refuse work of 2^31 items or more, naming it."""
    if count > INT_LIMIT:
        raise DeviceError('%s: %d elements exceed the kernels\' 32-bit indexing (2^31 - 1)'
                          % (what, count))


def size_text(nbytes):
    """``nbytes`` as messages show it: the exact count, and in KiB/MiB/GiB."""
    for unit, scale in (('GiB', 2 ** 30), ('MiB', 2 ** 20), ('KiB', 2 ** 10)):
        if nbytes >= scale:
            return '%d bytes (%.1f %s)' % (nbytes, nbytes / scale, unit)
    return '%d bytes' % nbytes
