"""Process-wide settings pycaffe exposes at module level (the free functions of _caffe.cpp): compute
mode and device, logging, multi-GPU plumbing.

cct runs on the CPU only for now. ``set_mode_gpu``, ``set_device`` and ``NCCL`` therefore raise
straight away, as CPU-only Caffe stops on them, rather than carry on silently on the CPU.
"""
import os
import socket
import tempfile
import time

from cct import log as _log
from cct.errors import CctError

_NO_GPU = ('cct has no GPU backend yet, so %s is not available; remove the call (or use '
           'set_mode_cpu()) to run on the CPU')

_state = {'mode': 'cpu', 'solver_count': 1, 'solver_rank': 0, 'multiprocess': False}


def set_mode_cpu():
    """Run every net on the CPU (the only backend cct has so far)."""
    _state['mode'] = 'cpu'


def set_mode_gpu():
    """Raises CctError: cct has no GPU backend yet."""
    raise CctError(_NO_GPU % 'set_mode_gpu()')


def set_device(device_id):
    """Raises CctError: cct has no GPU backend yet, so there is no device to select."""
    raise CctError(_NO_GPU % ('set_device(%r)' % (device_id,)))


def mode():
    """The current compute mode: 'cpu'."""
    return _state['mode']


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
