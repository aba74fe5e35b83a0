"""The OpenCL runtime: every kernel source compiles (both dtypes), a source that does not compile
raises with the compiler's log and the kernel's name, built programs are cached on disk and reloaded,
and an allocation larger than the device raises naming the size and what it was for."""
import numpy as np
import pytest

from cct.errors import DeviceError
from cct.kernels import gpu
from cct.kernels.gpu import cl_runtime


BROKEN = '''
KERNEL fine(const int n, ARRAY(REAL, y))
{
    OFFSET(y);
    KERNEL_LOOP(i, n) y[i] = 0;
}

KERNEL broken_kernel(const int n, ARRAY(REAL, y))
{
    OFFSET(y);
    KERNEL_LOOP(i, n) y[i] = undefined_var;
}
'''


def test_every_source_compiles_for_opencl(ocl):
    failures = gpu.check_kernels('opencl', device=ocl.runtime.device)
    assert failures == [], '\n'.join('%s (%s): %s' % failure for failure in failures)


def test_compile_error_names_source_kernel_and_log(ocl, monkeypatch):
    monkeypatch.setitem(gpu._TEXT, 'elementwise.cl', BROKEN)
    with pytest.raises(DeviceError) as error:
        ocl.runtime.program('elementwise', np.float32, use_cache=False)
    message = str(error.value)
    assert 'elementwise.cl' in message and 'float32' in message
    assert 'in kernel broken_kernel' in message
    assert 'undefined_var' in message   # the compiler's own log
    failures = gpu.check_kernels('opencl', families=('elementwise',), device=ocl.runtime.device)
    assert [(family, dtype) for family, dtype, _ in failures] == [('elementwise', 'float32'),
                                                                  ('elementwise', 'float64')]
    assert all('broken_kernel' in text for _, _, text in failures)


def test_kernels_in_log_maps_lines_to_kernels():
    line = next(number for number, text in
                enumerate(gpu._read('pooling.cl').splitlines(), 1) if 'KERNEL ave_pool_forward' in text)
    log = 'error: pooling.cl:%d:5: something\nnote: pooling.cl:%d:1: more' % (line + 3, line + 4)
    assert gpu.kernels_in_log('pooling', log) == ['ave_pool_forward']
    assert gpu.kernels_in_log('pooling', 'no location') == []


def test_programs_are_cached_on_disk_and_reloaded(ocl, tmp_path, monkeypatch):
    monkeypatch.setenv('CCT_KERNEL_CACHE', str(tmp_path))
    fresh = cl_runtime.Runtime(ocl.runtime.device)
    fresh.program('update', np.float32)
    cached = list(tmp_path.iterdir())
    assert len(cached) == 1 and cached[0].suffix == '.bin' and cached[0].stat().st_size > 0
    # Another process's runtime (a new context) loads the binary; the kernels run from it.
    again = cl_runtime.Runtime(ocl.runtime.device)
    built = []
    monkeypatch.setattr(again.cl, 'Program', _recording(again.cl.Program, built))
    again.program('update', np.float32)
    assert built == ['binary']
    # A corrupt file is rebuilt from source and replaced.
    cached[0].write_bytes(b'not a binary')
    third = cl_runtime.Runtime(ocl.runtime.device)
    third.program('update', np.float32)
    assert cached[0].read_bytes() != b'not a binary'


def _recording(program_class, built):
    def make(context, *args):
        built.append('binary' if len(args) == 2 else 'source')
        return program_class(context, *args)
    return make


def test_allocation_larger_than_the_device_is_an_error(ocl):
    too_many = ocl.runtime.memory // 4 + 1
    with pytest.raises(DeviceError) as error:
        ocl.empty((too_many,), np.float32, 'layer conv1 (Convolution) top')
    message = str(error.value)
    assert str(too_many * 4) in message and 'conv1' in message and ocl.runtime.device.name in message
    with pytest.raises(DeviceError, match='column buffer'):
        ocl.conv_plan(1, 1, (2 ** 16, 2 ** 16), 1, (2 ** 16, 2 ** 16), 1, (3, 3), (1, 1), (1, 1),
                      (1, 1), np.float64)


def test_work_beyond_32_bit_indexing_is_an_error(ocl):
    with pytest.raises(DeviceError, match='32-bit'):
        cl_runtime.check_count(2 ** 31, 'elementwise.fill')
    if ocl.runtime.max_alloc >= 2 ** 31:   # PoCL: 8 GiB buffers hold 2^31 bytes, not int8 indices
        with pytest.raises(DeviceError, match=r'layer x.*32-bit'):
            ocl.empty((2 ** 31,), np.uint8, 'layer x')


def test_float64_needs_fp64(ocl, monkeypatch):
    fresh = cl_runtime.Runtime(ocl.runtime.device)
    monkeypatch.setattr(fresh, 'has_fp64', False)
    with pytest.raises(DeviceError, match='cl_khr_fp64'):
        fresh.program('gemm', np.float64)


def test_check_kernels_report(ocl, monkeypatch, capsys):
    import io
    from cct.cli import main
    assert main(['device_query', '--check-kernels', 'opencl']) == 0
    assert capsys.readouterr().out.count(' ok\n') == 2 * len(gpu.FAMILIES)
    monkeypatch.setitem(gpu._TEXT, 'rng.cl', BROKEN)
    report = io.StringIO()
    assert gpu.check_kernels_main('opencl', out=report) == 1
    text = report.getvalue()
    assert 'rng.cl           float32  opencl       FAILED' in text
    assert 'broken_kernel' in text and '2 of 16 kernel programs failed' in text


def test_gemm_kernel_follows_the_device_type(ocl):
    cpu_device = bool(ocl.runtime.device.type & ocl.runtime.cl.device_type.CPU)
    assert ocl.runtime.gemm_kernel == ('gemm_direct' if cpu_device else 'gemm')


def test_out_of_memory_at_launch_names_the_kernel(ocl, monkeypatch):
    cl = ocl.runtime.cl

    def exhausted(*args):
        raise cl.MemoryError('clEnqueueNDRangeKernel', cl.status_code.MEM_OBJECT_ALLOCATION_FAILURE,
                             'MEM_OBJECT_ALLOCATION_FAILURE')
    key = ('elementwise', 'fill', np.dtype(np.float32))
    ocl.runtime.kernel(*key)
    monkeypatch.setitem(ocl.runtime._kernels, key, exhausted)
    with pytest.raises(DeviceError, match='ran out of memory running kernel fill of elementwise.cl'):
        ocl.zeros(10, np.float32)
