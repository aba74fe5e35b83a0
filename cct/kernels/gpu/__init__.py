"""cct's accelerator kernels: one OpenCL C source per op family in this folder, compiled unchanged as
CUDA C through the macro prelude (prelude.h), and ``check_kernels`` to compile every source for a
backend and report failures by source name (``cct device_query --check-kernels``).

A program is a family's source with the prelude in front and REAL fixed to float or double; a
``#line`` directive keeps compiler messages pointing at the family's own file and line.
"""
import hashlib
import os
import re

import numpy as np

# What the ``cuda`` extra installs (pyproject.toml), for the hints of a missing CuPy or NVRTC: CuPy for
# CUDA 13 with the toolkit's libraries from PyPI (cuBLAS, NVRTC; no system CUDA), and NVRTC's wheel.
CUDA_REQUIREMENTS = ('cupy-cuda13x[ctk]>=14', 'nvidia-cuda-nvrtc>=13')
FAMILIES = ('gemm', 'lowering', 'pooling', 'lrn', 'elementwise', 'reduction', 'rng', 'update')
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_HERE = os.path.dirname(os.path.abspath(__file__))
_TEXT = {}


def _read(filename):
    text = _TEXT.get(filename)
    if text is None:
        with open(os.path.join(_HERE, filename)) as f:
            text = _TEXT[filename] = f.read()
    return text


def source_name(family):
    """The file name of ``family``'s source, as messages name it."""
    return family + '.cl'


def source(family):
    """The full text of ``family``'s program: prelude, then the family's file (its own line numbers)."""
    if family not in FAMILIES:
        raise ValueError('no kernel family %r (families: %s)' % (family, ', '.join(FAMILIES)))
    return (_read('prelude.h') + '\n#line 1 "%s"\n' % source_name(family)
            + _read(source_name(family)))


def defines(dtype, accumulate_double=True):
    """The preprocessor definitions a program of ``dtype`` is built with (both backends)."""
    dtype = np.dtype(dtype)
    if dtype not in DTYPES:
        raise ValueError('cct kernels compute in float32 or float64, not %s' % dtype)
    real = 'double' if dtype == np.float64 else 'float'
    options = ['-DREAL=%s' % real]
    if dtype == np.float64:
        options.append('-DCCT_DOUBLE=1')
    options.append('-DACCUM=%s' % ('double' if accumulate_double else real))
    return options


def gemm_geometry(kernel='gemm'):
    """((threads_m, threads_n), (tile_m, tile_n)) of a gemm.cl kernel's launch: a work-group of
    threads_m x threads_n work-items computes a tile_m x tile_n block of C ('gemm': the tiled kernel's
    defaults; 'gemm_direct': 8 x 8 work-items of one register block each). Read from the source, so
    launches always match it."""
    text = _read('gemm.cl')

    def value(name):
        return int(re.search(r'#define %s (\d+)' % name, text).group(1))
    if kernel == 'gemm_direct':
        return (8, 8), (8 * value('DIRECT_BLOCK_M'), 8 * value('DIRECT_BLOCK_N'))
    return ((value('GEMM_THREADS_M'), value('GEMM_THREADS_N')),
            (value('GEMM_BLOCK_M') * value('GEMM_THREADS_M'),
             value('GEMM_BLOCK_N') * value('GEMM_THREADS_N')))


def source_hash(text, *parts):
    """A hex digest of a program's text and whatever else its binary depends on (options, device)."""
    digest = hashlib.sha256(text.encode())
    for part in parts:
        digest.update(b'\0' + str(part).encode())
    return digest.hexdigest()


def kernel_at_line(family, line):
    """The KERNEL whose body holds ``line`` (1-based) of ``family``'s file, or None."""
    name = None
    for number, text in enumerate(_read(source_name(family)).splitlines(), 1):
        if number > line:
            break
        match = re.match(r'\s*KERNEL\s+(\w+)\s*\(', text)
        if match:
            name = match.group(1)
    return name


def kernels_in_log(family, log):
    """The kernels a compiler log's errors point into (``file.cl:LINE`` or ``file.cl(LINE)``)."""
    names = []
    pattern = re.escape(source_name(family)) + r'(?::|\()(\d+)'
    for match in re.finditer(pattern, log or ''):
        name = kernel_at_line(family, int(match.group(1)))
        if name and name not in names:
            names.append(name)
    return names


def check_kernels(backend='opencl', arch=None, families=FAMILIES, device=None):
    """Compile every family in float and double for ``backend`` ('opencl' on ``device`` or the first
    OpenCL device; 'cuda' through NVRTC for ``arch``, e.g. 'sm_80', needing no GPU).

    Returns a list of (family, dtype name, message) for the builds that failed; empty when all built.
    """
    failures = []
    if backend == 'opencl':
        from cct.kernels.gpu import cl_runtime
        runtime = cl_runtime.runtime(device)
        for family in families:
            for dtype in DTYPES:
                try:
                    runtime.program(family, dtype, use_cache=False)
                except Exception as error:  # noqa: BLE001 - every failure is reported, by name
                    failures.append((family, dtype.name, str(error)))
    elif backend == 'cuda':
        from cct.kernels.gpu import nvrtc
        nvrtc._architecture(arch or 'sm_80')   # an unsupported one is one error, not one per source
        for family in families:
            for dtype in DTYPES:
                try:
                    nvrtc.compile_ptx(family, dtype, arch or 'sm_80')
                except Exception as error:  # noqa: BLE001
                    failures.append((family, dtype.name, str(error)))
    else:
        raise ValueError('unknown kernel backend %r (use opencl or cuda)' % backend)
    return failures


def check_kernels_main(backend='opencl', arch=None, out=None):
    """``cct device_query --check-kernels BACKEND [--arch sm_XX]``: compile every source, print one line
    per program and each failure's log, and return the exit status (0 when every program built)."""
    import sys
    from cct.errors import DeviceError
    out = out or sys.stdout
    try:
        failures = check_kernels(backend, arch=arch)
    except (DeviceError, ValueError) as error:   # no compiler or device; a bad architecture
        print('cannot check the kernels for %s: %s' % (backend, error), file=out)
        return 1
    failed = {(family, dtype) for family, dtype, _ in failures}
    target = backend + (' %s' % (arch or 'sm_80') if backend == 'cuda' else '')
    for family in FAMILIES:
        for dtype in DTYPES:
            status = 'FAILED' if (family, dtype.name) in failed else 'ok'
            print('%-16s %-8s %-12s %s' % (source_name(family), dtype.name, target, status),
                  file=out)
    for family, dtype, message in failures:
        print('\n%s (%s):\n%s' % (source_name(family), dtype, message), file=out)
    print('%d of %d kernel programs failed to compile for %s'
          % (len(failures), len(FAMILIES) * len(DTYPES), target), file=out)
    return 1 if failures else 0
