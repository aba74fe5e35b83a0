"""cct's accelerator kernel sources: the one text compiles as CUDA C through NVRTC (no GPU needed) for
two architectures, and a broken source fails naming the source, the kernel and NVRTC's log.
(The OpenCL build of the same sources is tested in tests/devices/test_opencl_runtime.py.)"""
import re

import numpy as np
import pytest

from cct.errors import DeviceError
from cct.kernels import gpu


@pytest.fixture(scope='module')
def nvrtc():
    from cct.kernels.gpu import nvrtc
    try:
        nvrtc.library()
    except DeviceError as error:
        pytest.skip(str(error))
    return nvrtc


@pytest.mark.parametrize('flag, arch', [('--check-kernels', 'sm_75'), ('--check_kernels', 'sm_90')])
def test_every_source_compiles_as_cuda(nvrtc, capsys, flag, arch):
    # Through the command CI and users run, in both spellings of the flag (Caffe's underscores).
    from cct.cli import main
    status = main(['device_query', flag, 'cuda', '--arch', arch])
    out = capsys.readouterr().out
    assert status == 0, out
    assert out.count('cuda %s   ok' % arch) == 2 * len(gpu.FAMILIES)
    assert '0 of 16 kernel programs failed to compile for cuda %s' % arch in out


def test_an_architecture_nvrtc_lacks_is_one_clear_error(nvrtc, capsys):
    from cct.cli import main
    oldest = nvrtc.supported_architectures()[0]
    assert main(['device_query', '--check-kernels', 'cuda', '--arch', 'sm_%d' % (oldest - 5)]) == 1
    out = capsys.readouterr().out
    assert out.count('\n') == 1 and 'does not compile for sm_%d' % (oldest - 5) in out
    assert 'sm_%d' % oldest in out   # the architectures it does compile for
    with pytest.raises(DeviceError, match='does not compile'):
        nvrtc.compile_ptx('rng', np.float32, 'sm_%d' % (oldest - 5))


def test_cuda_build_exports_every_kernel_unmangled(nvrtc):
    for family in gpu.FAMILIES:
        declared = re.findall(r'^KERNEL\s+(\w+)\s*\(', gpu._read(gpu.source_name(family)), re.M)
        ptx = nvrtc.compile_ptx(family, np.float64, 'sm_80')
        assert sorted(re.findall(r'\.entry\s+(\w+)', ptx)) == sorted(declared), family
        assert '.f64' in ptx


def test_cuda_compile_error_names_source_kernel_and_log(nvrtc, monkeypatch):
    monkeypatch.setitem(gpu._TEXT, 'lrn.cl',
                        'KERNEL fine(const int n) {}\n\nKERNEL broken_kernel(const int n)\n{\n'
                        '    const int m = undefined_var + n;\n}\n')
    with pytest.raises(DeviceError) as error:
        nvrtc.compile_ptx('lrn', np.float32, 'sm_80')
    message = str(error.value)
    assert 'lrn.cl' in message and 'float32' in message and 'sm_80' in message
    assert 'in kernel broken_kernel' in message and 'undefined_var' in message
    failures = gpu.check_kernels('cuda', arch='sm_80', families=('lrn',))
    assert [(family, dtype) for family, dtype, _ in failures] == [('lrn', 'float32'),
                                                                  ('lrn', 'float64')]


def test_sources_and_options():
    text = gpu.source('gemm')
    assert text.startswith('/* cct\'s kernel prelude') and '#line 1 "gemm.cl"' in text
    assert gpu.defines(np.float64) == ['-DREAL=double', '-DCCT_DOUBLE=1', '-DACCUM=double']
    assert gpu.defines(np.float32, accumulate_double=False) == ['-DREAL=float', '-DACCUM=float']
    with pytest.raises(ValueError, match='float16'):
        gpu.defines(np.float16)
    with pytest.raises(ValueError, match='no kernel family'):
        gpu.source('fft')
    with pytest.raises(ValueError, match='unknown kernel backend'):
        gpu.check_kernels('metal')


def test_device_query_check_kernels_cli(nvrtc, capsys, monkeypatch):
    # (The passing run is test_every_source_compiles_as_cuda; this one checks the command's report.)
    from cct.cli import main
    monkeypatch.setitem(gpu._TEXT, 'update.cl', 'KERNEL broken_kernel(const int n) { n = oops; }\n')
    assert main(['device_query', '--check_kernels', 'cuda', '--arch', 'sm_86']) == 1
    out = capsys.readouterr().out
    assert out.count('cuda sm_86   ok') == 2 * len(gpu.FAMILIES) - 2
    assert 'update.cl        float64  cuda sm_86   FAILED' in out and 'broken_kernel' in out
    assert '2 of 16 kernel programs failed to compile for cuda sm_86' in out
