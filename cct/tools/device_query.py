"""Show the compute devices cct can use (Caffe's ``caffe device_query``): the CPU (cores, SIMD, the
BLAS cct's kernels call and the one numpy uses), then every accelerator in Caffe's numbering
(CUDA devices, then each OpenCL platform's devices) with memory and compute units.
``--gpu N`` (or ``all``) shows accelerators only.
"""
import ctypes
import os
import re

import numpy as np

from cct import devices
from cct.devices import cpu
from cct.errors import CctError
from cct.log import logger
from cct.tools.common import gpu_ids


def add_arguments(parser):
    parser.add_flag('gpu', default='',
                    help='GPU device IDs to query (CUDA devices first, then OpenCL), or "all".')
    parser.add_argument('--check-kernels', '--check_kernels', '-check_kernels',
                        dest='check_kernels', default='',
                        help='Optional; compile every GPU kernel source for "opencl" (on its '
                             'first device) or "cuda" (through NVRTC, no GPU needed) and report '
                             'failures (also spelled --check-kernels)')
    parser.add_flag('arch', default='',
                    help='Optional; the CUDA architecture --check_kernels cuda compiles for '
                         '(e.g. sm_80)')


def _blas_threads():
    """OpenBLAS's thread count, read from the library numpy loaded (None when not found)."""
    try:
        with open('/proc/self/maps') as f:
            libraries = set(re.findall(r'(/\S*openblas\S*\.so[.\d]*)', f.read()))
    except OSError:
        return None
    for path in sorted(libraries):
        library = ctypes.CDLL(path)
        for symbol in ('scipy_openblas_get_num_threads64_', 'scipy_openblas_get_num_threads',
                       'openblas_get_num_threads64_', 'openblas_get_num_threads'):
            function = getattr(library, symbol, None)
            if function is not None:
                function.restype = ctypes.c_int
                return function()
    return None


def _log_cpu():
    logger.info('Querying CPU')
    usable = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    logger.info('Device: CPU')
    logger.info('Name:                          %s', cpu.cpu_model())
    logger.info('Logical cores:                 %s', os.cpu_count())
    logger.info('Cores this process may use:    %d', usable)
    from numpy._core._multiarray_umath import __cpu_features__
    simd = [name for name in ('SSE42', 'AVX', 'FMA3', 'AVX2', 'AVX512F', 'ASIMD', 'SVE')
            if __cpu_features__.get(name)]
    logger.info('SIMD extensions:               %s', ' '.join(simd) or 'none detected')
    memory = cpu.open_device(0).describe()['memory']
    if memory:
        logger.info('Total memory:                  %d', memory)
    logger.info('BLAS (cct kernels):            %s', cpu.kernel_blas())
    blas = np.__config__.CONFIG.get('Build Dependencies', {}).get('blas', {})
    logger.info('BLAS (numpy):                  %s %s', blas.get('name', 'unknown'),
                blas.get('version', ''))
    if blas.get('openblas configuration'):
        logger.info('BLAS configuration:            %s', blas['openblas configuration'])
    threads = _blas_threads()
    logger.info('BLAS threads:                  %s', threads if threads is not None else 'unknown')
    for variable in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'OMP_WAIT_POLICY'):
        logger.info('%-30s %s', variable + ':', os.environ.get(variable, '(not set)'))


def _log_accelerator(ordinal, name):
    device = devices.get_device(name)
    info = device.describe()
    logger.info('Querying GPU %d', ordinal)
    logger.info('Device: %s', device)
    logger.info('Name:                          %s', info.get('name'))
    memory = info.get('memory')
    logger.info('Total global memory:           %s', memory if memory is not None else 'unknown')
    logger.info('Compute units:                 %s', info.get('compute_units'))
    for key, value in info.items():
        if key not in ('name', 'memory', 'compute_units'):
            logger.info('%-30s %s', key.replace('_', ' ').capitalize() + ':', value)


def run(args):
    if args.check_kernels:
        from cct.kernels.gpu import check_kernels_main
        if args.check_kernels not in ('opencl', 'cuda'):
            raise CctError('--check_kernels takes "opencl" or "cuda", got %r' % args.check_kernels)
        return check_kernels_main(args.check_kernels, arch=args.arch or None)
    accelerators = devices.device_names()[1:]
    if args.gpu:
        for ordinal in gpu_ids(args.gpu):
            _log_accelerator(ordinal, devices.accelerator_name(ordinal))
        return
    _log_cpu()
    for ordinal, name in enumerate(accelerators):
        _log_accelerator(ordinal, name)
    for kind in devices.ACCELERATORS:
        why = devices.unavailable(kind)
        if why:
            logger.info('No %s device: %s', kind, why)
