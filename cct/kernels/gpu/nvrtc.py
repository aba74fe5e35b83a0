"""Compile cct's kernel sources as CUDA C through NVRTC, with no GPU and no CUDA toolkit: the
``nvidia-cuda-nvrtc`` wheel's library called through ctypes, to PTX for a virtual architecture.

This is the CUDA half of ``check_kernels``: CI proves on every commit that the sources the OpenCL
device runs also compile for the CUDA backend.
"""
import ctypes
import ctypes.util
import glob
import os
import re

import numpy as np

from cct.errors import DeviceError, install_hint
from cct.kernels import gpu

_library = None


def _candidates():
    try:
        import nvidia
        roots = list(nvidia.__path__)
    except ImportError:
        roots = []
    for root in roots:   # cu13 wheels: nvidia/cu13/lib; cu12 wheels: nvidia/cuda_nvrtc/lib
        for pattern in ('cu*/lib/libnvrtc.so*', 'cuda_nvrtc/lib/libnvrtc.so*'):
            yield from sorted(p for p in glob.glob(os.path.join(root, pattern))
                              if 'builtins' not in p)
    for home in (os.environ.get('CUDA_PATH'), os.environ.get('CUDA_HOME'), '/usr/local/cuda'):
        if home:
            yield from sorted(glob.glob(os.path.join(home, 'lib64', 'libnvrtc.so*')))
    found = ctypes.util.find_library('nvrtc')
    if found:
        yield found


def library():
    """The loaded libnvrtc; DeviceError saying how to get it when there is none."""
    global _library
    if _library is None:
        for path in _candidates():
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            lib.nvrtcGetErrorString.restype = ctypes.c_char_p
            _library = lib
            break
        else:
            raise DeviceError('NVRTC not found: %s to compile cct\'s kernels as CUDA'
                              % install_hint('cuda', *gpu.CUDA_REQUIREMENTS))
    return _library


def version():
    """NVRTC's (major, minor)."""
    major, minor = ctypes.c_int(), ctypes.c_int()
    library().nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


def supported_architectures():
    """The compute capabilities this NVRTC compiles for, as ints (75 for sm_75), ascending."""
    lib = library()
    number = ctypes.c_int()
    lib.nvrtcGetNumSupportedArchs(ctypes.byref(number))
    found = (ctypes.c_int * number.value)()
    lib.nvrtcGetSupportedArchs(found)
    return sorted(found)


def _architecture(arch):
    match = re.fullmatch(r'(?:sm_|compute_)?(\d+)[a-z]?', str(arch))
    if not match:
        raise ValueError('CUDA architecture %r: give sm_XX, compute_XX or XX' % (arch,))
    supported = supported_architectures()
    if int(match.group(1)) not in supported:
        # CUDA 13's NVRTC dropped Volta (sm_70) and older: one clear line, not 16 NVRTC errors.
        raise DeviceError('NVRTC %d.%d does not compile for %s; it supports %s (older GPUs need '
                          'the CUDA 12 toolkit: cupy-cuda12x and nvidia-cuda-nvrtc-cu12)'
                          % (*version(), arch, ', '.join('sm_%d' % a for a in supported)))
    return 'compute_%s' % match.group(1)


def compile_ptx(family, dtype, arch='sm_80'):
    """PTX of ``family``'s source for ``dtype`` and ``arch``; DeviceError with NVRTC's log on failure."""
    lib = library()
    architecture = _architecture(arch)
    text = gpu.source(family).encode()
    name = gpu.source_name(family).encode()
    # The CUDA device's compiler (CuPy's RawModule) adds --device-as-default-execution-space: so
    # does the check, so both front ends see the same program.
    options = [b'--gpu-architecture=' + architecture.encode(),
               b'--device-as-default-execution-space']
    options += [option.encode() for option in gpu.defines(dtype)]
    program = ctypes.c_void_p()
    _check(lib, lib.nvrtcCreateProgram(ctypes.byref(program), text, name, 0, None, None), family)
    try:
        array = (ctypes.c_char_p * len(options))(*options)
        result = lib.nvrtcCompileProgram(program, len(options), array)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(program, log)
        log = log.value.decode(errors='replace')
        if result != 0:
            kernels = gpu.kernels_in_log(family, log)
            raise DeviceError('CUDA kernel source %s (%s, %s) failed to compile with NVRTC%s: %s\n%s'
                              % (gpu.source_name(family), np.dtype(dtype).name, arch,
                                 ' in kernel %s' % ', '.join(kernels) if kernels else '',
                                 lib.nvrtcGetErrorString(result).decode(), log.strip()))
        lib.nvrtcGetPTXSize(program, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        _check(lib, lib.nvrtcGetPTX(program, ptx), family)
        return ptx.value.decode()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(program))


def _check(lib, result, family):
    if result != 0:
        raise DeviceError('NVRTC failed on %s: %s' % (gpu.source_name(family),
                                                     lib.nvrtcGetErrorString(result).decode()))
