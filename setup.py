"""Build script: compiles proto/caffe.proto into cct/proto/caffe_descriptor.pb and the Cython kernels.

The kernels are translated and compiled in parallel, one job per core (``-j N`` overrides), largest
first. Cython's utility code (memoryviews and the like, about 0.75 MB of C in every module) is built
once, in ``cct.kernels._cyutility``, instead of once per kernel module, and no debug information is
compiled: together these halved a clean build's compile work (74 to 35 CPU-seconds).

The descriptor is regenerated whenever this script runs (every install, editable or not), with the
protoc that grpcio-tools ships: ``python -m grpc_tools.protoc -Iproto
--descriptor_set_out=cct/proto/caffe_descriptor.pb proto/caffe.proto`` is the same command by hand.
"""
import glob
import os
import sys

import numpy
import scipy_openblas32
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
# Cython's memoryview and other utility code, compiled once for every kernel module (Cython >= 3.1).
SHARED_UTILITY = 'cct.kernels._cyutility'
JOBS = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


def compile_schema():
    from grpc_tools import protoc
    out = os.path.join(HERE, 'cct', 'proto', 'caffe_descriptor.pb')
    tmp = '%s.%d.tmp' % (out, os.getpid())
    status = protoc.main(['protoc', '-I' + os.path.join(HERE, 'proto'),
                          '--descriptor_set_out=' + tmp, os.path.join(HERE, 'proto', 'caffe.proto')])
    if status != 0:
        sys.exit('protoc failed to compile proto/caffe.proto')
    os.replace(tmp, out)  # a concurrent import never sees a half-written descriptor


# The panel kernels (conv_panels.h, built into lowering) are register-blocked for the generic
# schedule: GCC 12's -march=native on a Zen 4 EPYC tunes for znver3, which took CIFAR-10 quick's
# panel convolutions from 6.3 to 12 ms forward (conv2, b100), so they keep the generic tuning.
TUNING = {'lowering': ['-mtune=generic']}


def kernel_extensions():
    # CCT_PORTABLE=1 builds for any x86-64 instead of this machine's vector units; CCT_MARCH=ARCH
    # for another machine's (e.g. x86-64-v3, an AVX2 host).
    arch = [] if os.environ.get('CCT_PORTABLE') else ['-march=' + os.environ.get('CCT_MARCH',
                                                                                 'native')]
    # No FMA contraction: fused kernels must round each step as Caffe's separate BLAS calls do.
    # No loops turned into memset/memcpy calls: the lowering's many short runs cost more as calls.
    # -g0: Python's own flags ask for debug information, which was a fifth of the compile time.
    args = ['-O3', '-g0', '-fopenmp', '-ffp-contract=off', '-fno-tree-loop-distribute-patterns'] + arch
    kernels = os.path.join(HERE, 'cct', 'kernels')
    # Largest first (after the shared utility code), so the longest compiles start first and the
    # parallel jobs end together.
    names = sorted((f[:-4] for f in os.listdir(kernels) if f.endswith('.pyx')),
                   key=lambda name: -os.path.getsize(os.path.join(kernels, name + '.pyx')))
    # Every kernel links cct's BLAS (scipy-openblas32); cct/kernels/__init__.py preloads it by its
    # soname, so the build environment's path need not exist at run time.
    modules = [Extension('cct.kernels.' + name, [os.path.join('cct', 'kernels', name + '.pyx')],
                         include_dirs=[numpy.get_include(), scipy_openblas32.get_include_dir(),
                                       os.path.join('cct', 'kernels')],
                         depends=glob.glob(os.path.join('cct', 'kernels', '*.h')),
                         library_dirs=[scipy_openblas32.get_lib_dir()],
                         libraries=[scipy_openblas32.get_library()],
                         extra_compile_args=args + TUNING.get(name, []),
                         extra_link_args=['-fopenmp'],
                         define_macros=[('NPY_NO_DEPRECATED_API', 'NPY_1_7_API_VERSION')])
               for name in names]
    return [Extension(SHARED_UTILITY, sources=[], extra_compile_args=args)] + modules


# setuptools runs this file as __main__; cythonize's worker processes, where they start by spawning
# (macOS, Windows) or from a fork server (Python 3.14's Linux default), import it under another name.
if __name__ == '__main__':
    compile_schema()
    setup(ext_modules=cythonize(kernel_extensions(), language_level=3, nthreads=JOBS,
                                shared_utility_qualified_name=SHARED_UTILITY,
                                compiler_directives={'boundscheck': False, 'wraparound': False,
                                                     'cdivision': True, 'initializedcheck': False}),
          options={'build_ext': {'parallel': JOBS}})
