"""Caffe's solvers (solver.cpp, sgd_solver.cpp and solvers/*.cpp): SGD, Nesterov, AdaGrad, RMSProp,
AdaDelta and Adam on one shared training loop, with pycaffe's surface (``SGDSolver(path)``,
``get_solver(path)``, ``net``, ``test_nets``, ``iter``, ``step``, ``solve``, ``restore``,
``snapshot``, ``apply_update``, ``add_callback``, ``share_weights``, ``param``, ``lr``).
"""
import os

from cct import io as cct_io
from cct.proto import caffe_pb2
from cct.solver.solver import (Solver, SolverAction, register_solver, solver_class,
                               solver_type_list)
from cct.solver.sgd import NesterovSolver, SGDSolver
from cct.solver.adaptive import AdaDeltaSolver, AdaGradSolver, AdamSolver, RMSPropSolver


def get_solver(param, **kwargs):
    """The solver its ``type`` names (Caffe's SolverRegistry::CreateSolver, pycaffe's get_solver).

    Args:
        param: a solver prototxt path or a ``caffe_pb2.SolverParameter``.
        **kwargs: passed to the solver class (``dtype``, ``net``, ``devices``, ``split``).

    Raises:
        SolverError: an unknown ``type`` (the message lists the known ones).
    """
    if not isinstance(param, caffe_pb2.SolverParameter):
        kwargs.setdefault('source', os.fspath(param))
        param = cct_io.read_solver_text(os.fspath(param))
    elif param.HasField('solver_type'):
        upgraded = caffe_pb2.SolverParameter()
        upgraded.CopyFrom(param)
        cct_io.upgrade_solver(upgraded, kwargs.get('source', '<SolverParameter>'))
        param = upgraded
    return solver_class(param.type, kwargs.get('source', '<SolverParameter>'))(param, **kwargs)


__all__ = ['Solver', 'SolverAction', 'SGDSolver', 'NesterovSolver', 'AdaGradSolver',
           'RMSPropSolver', 'AdaDeltaSolver', 'AdamSolver', 'get_solver', 'register_solver',
           'solver_class', 'solver_type_list']
