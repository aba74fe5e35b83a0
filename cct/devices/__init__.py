"""The device registry: backends by kind (``cpu``, ``cuda``, ``opencl``), device names, and
Caffe's accelerator numbering (``--gpu N``: CUDA devices first, then OpenCL devices).

A backend is a module exposing ``count()`` (how many devices it sees; 0, never an exception, when
its library or driver is missing), ``unavailable()`` (why it sees none, or None) and ``open_device(index)``
(a ``Device``). Backends are imported lazily, so the core install works without PyOpenCL or CuPy.
"""
import importlib
import os

from cct.devices.base import Device  # noqa: F401  (re-exported: the interface)
from cct.errors import DeviceError

# kind -> module implementing it; accelerator numbering follows this order after 'cpu'.
BACKENDS = {'cpu': 'cct.devices.cpu', 'cuda': 'cct.devices.cuda', 'opencl': 'cct.devices.opencl'}
ACCELERATORS = ('cuda', 'opencl')

_open = {}


def backend(kind):
    """The backend module of ``kind``, or None when it is not part of this install."""
    try:
        return importlib.import_module(BACKENDS[kind])
    except ModuleNotFoundError as error:
        if error.name == BACKENDS[kind]:
            return None
        raise


def count(kind):
    """How many devices of ``kind`` exist here."""
    module = backend(kind)
    return module.count() if module is not None else 0


def unavailable(kind):
    """Why ``kind`` has no device here (a sentence), or None when it has some."""
    module = backend(kind)
    if module is None:
        return 'cct has no %s backend in this install' % kind
    return module.unavailable() if module.count() == 0 else None


def device_names():
    """Every device that exists here, by name: 'cpu', then 'cuda:N'..., then 'opencl:N'..."""
    names = ['cpu']
    for kind in ACCELERATORS:
        names += ['%s:%d' % (kind, i) for i in range(count(kind))]
    return names


def _parse(name):
    text = str(name).strip().lower()
    kind, _, index = text.partition(':')
    if kind not in BACKENDS or (index and not index.isdigit()):
        raise DeviceError('unknown device %r; devices here: %s (names are cpu, cuda:N, '
                          'opencl:N)' % (name, ', '.join(device_names())))
    return kind, int(index or 0)


def get_device(name='cpu'):
    """The ``Device`` called ``name`` ('cpu', 'opencl:N', 'cuda:N'; a bare kind means index 0),
    opened once per process. An unknown name or an index that does not exist raises
    ``DeviceError`` listing the devices that do."""
    if isinstance(name, Device):
        return name
    kind, index = _parse(name)
    key = (kind, index)
    if key not in _open:
        available = count(kind)
        if index >= available:
            why = unavailable(kind) if available == 0 else None
            raise DeviceError('device %s:%d does not exist%s; devices here: %s'
                              % (kind, index, ' (%s)' % why if why else '',
                                 ', '.join(device_names())))
        _open[key] = backend(kind).open_device(index)
    return _open[key]


def accelerator_name(ordinal):
    """The name of Caffe's GPU ``ordinal`` (``--gpu N``, ``device_id``): CUDA devices are numbered
    first, then OpenCL devices. Out of range raises ``DeviceError`` listing what exists."""
    ordinal = int(ordinal)
    remaining = ordinal
    if remaining >= 0:
        for kind in ACCELERATORS:
            available = count(kind)
            if remaining < available:
                return '%s:%d' % (kind, remaining)
            remaining -= available
    accelerators = device_names()[1:]
    raise DeviceError('GPU %d does not exist: %s' % (
        ordinal, 'the accelerators here are ' + ', '.join(
            'GPU %d = %s' % (i, n) for i, n in enumerate(accelerators)) if accelerators else
        'no accelerator found (%s)' % '; '.join(unavailable(k) or '' for k in ACCELERATORS)))


def select(gpu=None, mode_gpu=False):
    """The device a process runs on: ``CCT_DEVICE`` if set; else Caffe's GPU ``gpu`` (an int,
    from --gpu / set_device / device_id) when ``mode_gpu`` or ``gpu`` is given; else the CPU."""
    forced = os.environ.get('CCT_DEVICE')
    if forced:
        return get_device(forced)
    if gpu is not None or mode_gpu:
        return get_device(accelerator_name(0 if gpu is None else gpu))
    return get_device('cpu')
