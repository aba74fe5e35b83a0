"""Show the compute devices cct can use (Caffe's ``caffe device_query``): the CPU, its cores and
SIMD extensions, the BLAS numpy uses and its threads. cct has no GPU backend yet, so ``--gpu`` is
an error rather than a silent CPU run.
"""
import ctypes
import os
import re

import numpy as np

from cct.errors import CctError
from cct.log import logger
from cct.tools.common import NO_GPU


def add_arguments(parser):
    parser.add_flag('gpu', default='',
                    help='GPU device IDs to query, or "all" (cct has no GPU backend yet).')


def _cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


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


def run(args):
    if args.gpu:
        raise CctError(NO_GPU % args.gpu)
    logger.info('Querying CPU (cct has no GPU backend yet)')
    usable = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    logger.info('Device: CPU')
    logger.info('Name:                          %s', _cpu_model())
    logger.info('Logical cores:                 %s', os.cpu_count())
    logger.info('Cores this process may use:    %d', usable)
    from numpy._core._multiarray_umath import __cpu_features__
    simd = [name for name in ('SSE42', 'AVX', 'FMA3', 'AVX2', 'AVX512F', 'ASIMD', 'SVE')
            if __cpu_features__.get(name)]
    logger.info('SIMD extensions:               %s', ' '.join(simd) or 'none detected')
    blas = np.__config__.CONFIG.get('Build Dependencies', {}).get('blas', {})
    logger.info('BLAS (numpy):                  %s %s', blas.get('name', 'unknown'),
                blas.get('version', ''))
    if blas.get('openblas configuration'):
        logger.info('BLAS configuration:            %s', blas['openblas configuration'])
    threads = _blas_threads()
    logger.info('BLAS threads:                  %s', threads if threads is not None else 'unknown')
    for variable in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'OMP_WAIT_POLICY'):
        logger.info('%-30s %s', variable + ':', os.environ.get(variable, '(not set)'))
