"""Process-wide settings pycaffe exposes at module level (the free functions of _caffe.cpp): compute
mode and device, logging, multi-GPU plumbing.

``set_mode_gpu()`` and ``set_device(N)`` choose Caffe's GPU N (CUDA devices first, then OpenCL
devices; cct.devices), which every Net and Solver made afterwards runs on; ``CCT_DEVICE``
(``cpu``, ``opencl:N``, ``cuda:N``) overrides both for the whole process. ``NCCL`` raises: cct has
no multi-GPU support.
"""
import os
import socket
import tempfile
import time

from cct import devices
from cct import log as _log
from cct.errors import CctError

_state = {'mode': 'cpu', 'device_id': 0, 'solver_count': 1, 'solver_rank': 0,
          'multiprocess': False}


def set_mode_cpu():
    """Run the nets made from now on on the CPU."""
    _state['mode'] = 'cpu'
    _state.pop('device', None)


def set_mode_gpu():
    """Run the nets made from now on on Caffe's GPU ``set_device`` chose (0 by default); a
    missing accelerator raises DeviceError listing the devices that exist."""
    devices.accelerator_name(_state['device_id'])
    _state['mode'] = 'gpu'
    _state.pop('device', None)


def set_device(device_id):
    """Choose Caffe's GPU ``device_id`` (CUDA devices first, then OpenCL devices) for GPU mode."""
    devices.accelerator_name(device_id)
    _state['device_id'] = int(device_id)


def use_device(device):
    """Make nets made from now on run on ``device`` (a Device or a name), as the command line's
    --gpu does."""
    _state['mode'] = 'device'
    _state['device'] = devices.get_device(device)


def mode():
    """The current compute mode: 'cpu' or 'gpu'."""
    return 'cpu' if _state['mode'] == 'cpu' else 'gpu'



def current_device():
    """The Device nets are made on: ``CCT_DEVICE`` if set, else the GPU chosen in GPU mode, else
    the CPU."""
    if os.environ.get('CCT_DEVICE') or _state['mode'] != 'device':
        return devices.select(_state['device_id'] if _state['mode'] == 'gpu' else None)
    return _state['device']


def solver_count():
    return _state['solver_count']


def set_solver_count(count):
    _state['solver_count'] = int(count)


def solver_rank():
    return _state['solver_rank']


def set_solver_rank(rank):
    _state['solver_rank'] = int(rank)


def set_multiprocess(multiprocess):
    _state['multiprocess'] = bool(multiprocess)


def has_nccl():
    """False: cct has no NCCL (multi-GPU) support."""
    return False


class NCCL:
    """pycaffe's multi-GPU synchroniser; cct has none, so constructing one raises CctError."""

    def __init__(self, *args, **kwargs):
        raise CctError('Multi-GPU execution is not available: cct has no GPU or NCCL support')

    @staticmethod
    def new_uid():
        raise CctError('Multi-GPU execution is not available: cct has no GPU or NCCL support')


def init_log(level=0, stderr=True):
    """Start printing cct's log in glog format (pycaffe's ``caffe.init_log``).

    Args:
        level: lowest level shown, as glog's minloglevel: 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL.
        stderr: True (default) prints to stderr; False writes, as glog does without
            ``logtostderr``, to ``cct.<host>.<user>.log.INFO.<date>-<time>.<pid>`` in
            ``$GLOG_log_dir`` or the temporary directory.

    Returns:
        The log file's path when ``stderr`` is False, else None.
    """
    log_file = _state.pop('log_file', None)
    if stderr:
        _log.init_log(level)
    else:
        directory = os.environ.get('GLOG_log_dir') or tempfile.gettempdir()
        path = os.path.join(directory, 'cct.%s.%s.log.INFO.%s.%d' % (
            socket.gethostname(), os.environ.get('USER', 'user'), time.strftime('%Y%m%d-%H%M%S'),
            os.getpid()))
        _state['log_file'] = open(path, 'a', buffering=1)
        _log.init_log(level, _state['log_file'])
    if log_file is not None:
        log_file.close()
    return None if stderr else path


def log(message):
    """Write ``message`` to cct's log at INFO level (pycaffe's ``caffe.log``)."""
    _log.logger.info('%s', message)
