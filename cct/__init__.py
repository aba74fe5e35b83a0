"""cct: Caffe-compatible CNN training in Python (``import cct as caffe`` keeps pycaffe scripts working).

The module surface is pycaffe's (python/caffe/__init__.py): ``Net``, ``Layer``, the solvers and
``get_solver``, ``TRAIN``/``TEST``, ``set_mode_cpu``/``set_mode_gpu``/``set_device``,
``set_random_seed``, ``init_log``/``log``, ``layer_type_list``, ``Timer``, ``io`` (Transformer and
friends), ``NetSpec``/``layers``/``params``/``to_proto``, ``Classifier``, ``Detector``, ``draw`` and
``proto.caffe_pb2``. cct runs on the CPU; ``set_mode_gpu`` says so and raises.
"""
import importlib
import os

from cct.interrupt import QuietInterrupt

# Ctrl-C while cct loads (a second or so) ends the process quietly, as it would end a Caffe tool.
_quiet_while_loading = QuietInterrupt()

# OpenBLAS's threads spin for ~2^28 cycles after each GEMM and OpenMP's after each parallel region;
# on a few cores the two pools then fight and a 0.1 ms kernel takes 4-8 ms. Both must be set before
# the libraries load (numpy's OpenBLAS reads its variable at import, libgomp when cct's kernels load).
os.environ.setdefault('OPENBLAS_THREAD_TIMEOUT', '4')
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

__version__ = '0.1.0'

from cct import io, proto  # noqa: E402
from cct.proto import caffe_pb2  # noqa: E402
from cct.proto.caffe_pb2 import TEST, TRAIN  # noqa: E402
from cct.layers import Layer, layer_type_list  # noqa: E402
from cct.net import Net  # noqa: E402
from cct.net_spec import NetSpec, layers, params, to_proto  # noqa: E402
from cct.classifier import Classifier  # noqa: E402
from cct.detector import Detector  # noqa: E402
from cct.rng import set_random_seed  # noqa: E402
from cct.runtime import (NCCL, has_nccl, init_log, log, set_device, set_mode_cpu,  # noqa: E402
                         set_mode_gpu, set_multiprocess, set_solver_count, set_solver_rank,
                         solver_count, solver_rank)
from cct.timer import Timer  # noqa: E402

_SOLVER_NAMES = ('get_solver', 'SGDSolver', 'NesterovSolver', 'AdaGradSolver', 'RMSPropSolver',
                 'AdaDeltaSolver', 'AdamSolver')
_quiet_while_loading.remove()

# Submodules loaded on first use: drawing needs pydot, and the solvers pull in the training loop.
_LAZY_MODULES = ('draw', 'coord_map', 'solver')


def __getattr__(name):
    if name in _SOLVER_NAMES:
        return getattr(importlib.import_module('cct.solver'), name)
    if name in _LAZY_MODULES:
        return importlib.import_module('cct.' + name)
    raise AttributeError("module 'cct' has no attribute %r" % name)


def __dir__():
    return sorted(set(globals()) | set(_SOLVER_NAMES) | set(_LAZY_MODULES))
