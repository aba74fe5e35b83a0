"""The one-line hints for optional packages name exactly what their extra in pyproject.toml
installs (cct.errors.install_hint), never ``pip install "cct[...]"``: the ``cct`` on PyPI is an
unrelated project."""
import sys

import pytest

from cct.errors import DeviceError, MissingPackageError, install_hint


def expected(extra, extras):
    return install_hint(extra, *extras[extra])


def test_compute_groups_without_ray(monkeypatch, extras):
    from cct.distributed.cluster import import_ray
    monkeypatch.setitem(sys.modules, 'ray', None)
    with pytest.raises(MissingPackageError) as error:
        import_ray()
    assert str(error.value) == ('compute groups run on Ray, which is not installed: '
                                + expected('distributed', extras))


def test_simulator_plots_without_matplotlib(monkeypatch, extras):
    from cct.distributed import reports
    monkeypatch.setitem(sys.modules, 'matplotlib.figure', None)
    with pytest.raises(MissingPackageError) as error:
        reports._figure(4, 3)
    assert str(error.value) == ('--plot needs matplotlib, which is not installed: '
                                + expected('plot', extras))


def test_opencl_without_pyopencl(monkeypatch, extras):
    from cct.devices import opencl
    monkeypatch.setitem(sys.modules, 'pyopencl', None)
    assert opencl.unavailable() == 'pyopencl is not installed: ' + expected('opencl', extras)


def test_nvrtc_missing(monkeypatch, extras):
    from cct.kernels.gpu import nvrtc
    monkeypatch.setattr(nvrtc, '_library', None)
    monkeypatch.setattr(nvrtc, '_candidates', lambda: iter(()))
    with pytest.raises(DeviceError) as error:
        nvrtc.library()
    assert str(error.value) == ("NVRTC not found: %s to compile cct's kernels as CUDA"
                                % expected('cuda', extras))


def test_cuda_without_cupy(monkeypatch, extras):
    from cct import devices
    from cct.devices import cuda
    monkeypatch.setitem(sys.modules, 'cupy', None)
    assert cuda.count() == 0
    assert cuda.unavailable() == 'CuPy is not installed: ' + expected('cuda', extras)
    with pytest.raises(DeviceError, match=r'cuda:0 does not exist \(CuPy is not installed'):
        devices.get_device('cuda:0')
