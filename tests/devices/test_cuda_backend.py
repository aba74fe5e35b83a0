"""The CUDA backend where a machine has no usable GPU (CI): ``count()`` is 0, never an exception,
whatever CuPy or the driver says, and ``unavailable()`` passes on the CUDA runtime's own reason.
(With a GPU, every test that takes ``accel`` runs on cuda:0 too.)"""
import sys
import types

import pytest

from cct import devices
from cct.devices import cuda
from cct.errors import DeviceError


def fake_cupy(get_count):
    cupy = types.ModuleType('cupy')
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_count))
    return cupy


class CUDARuntimeError(RuntimeError):
    pass


def no_driver():
    raise CUDARuntimeError('cudaErrorInsufficientDriver: CUDA driver version is insufficient for '
                           'CUDA runtime version')


def test_an_old_or_missing_driver_means_no_device_and_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, 'cupy', fake_cupy(no_driver))
    assert cuda.count() == 0 and devices.count('cuda') == 0
    assert cuda.unavailable() == ('the CUDA runtime reports cudaErrorInsufficientDriver: CUDA '
                                  'driver version is insufficient for CUDA runtime version')
    assert 'cuda:0' not in devices.device_names()
    with pytest.raises(DeviceError, match='cuda:3 does not exist .*cudaErrorInsufficientDriver'):
        devices.get_device('cuda:3')


def test_no_gpu_listed(monkeypatch):
    monkeypatch.setitem(sys.modules, 'cupy', fake_cupy(lambda: 0))
    assert cuda.count() == 0
    assert cuda.unavailable() == 'the CUDA runtime lists no GPU'
    with pytest.raises(DeviceError, match=r'cuda:0 does not exist \(0 CUDA devices\)'):
        cuda.open_device(0)


def test_cuda_gpus_come_first_in_caffes_numbering(monkeypatch):
    monkeypatch.setitem(sys.modules, 'cupy', fake_cupy(lambda: 2))
    opencl = devices.count('opencl')
    assert devices.device_names()[1:3] == ['cuda:0', 'cuda:1']
    assert devices.accelerator_name(1) == 'cuda:1'
    if opencl:
        assert devices.accelerator_name(2) == 'opencl:0'


def test_a_gpu_without_cublas_is_refused_when_opened(monkeypatch):
    # CuPy's plain wheel finds cuBLAS only in the toolkit (the cuda extra's [ctk] wheels bring it):
    # without it the device is refused at once, not at the first convolution.
    monkeypatch.setitem(sys.modules, 'cupy_backends.cuda.libs', None)
    with pytest.raises(DeviceError, match=r'cuda:0 cannot be used: cuBLAS does not load .*'
                                          r'cupy-cuda13x\[ctk\]'):
        cuda.CUDADevice(0)
