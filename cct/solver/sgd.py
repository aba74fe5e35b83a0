"""Momentum SGD and Nesterov's accelerated gradient (Caffe's sgd_solver.cpp and nesterov_solver.cpp).

Caffe folds the learning rate into the history: ``h = momentum*h + local_rate*g; w -= h``, so a
change of rate does not rescale the velocity already built up. Nesterov steps back and over:
``h_prev = h; h = momentum*h + local_rate*g; w -= (1+momentum)*h - momentum*h_prev``. Both work in
place on the param's diff (which holds the regularised gradient and leaves holding the step).
"""
from cct.errors import SolverError
from cct.solver.solver import Solver, register_solver


@register_solver('SGD')
class SGDSolver(Solver):
    """Stochastic gradient descent with momentum (``type: "SGD"``)."""

    def update_param(self, param_id, rate):
        # Normalise, regularise, the momentum rule and data -= diff in one pass (cct.kernels.update)
        # with the same arithmetic as the step-by-step path of Solver.update_param, which the
        # solvers deriving from this one with rules of their own keep.
        if type(self).compute_update_value is not SGDSolver.compute_update_value:
            return super().update_param(param_id, rate)
        blob = self.net.learnable_params[param_id]
        dtype = self.dtype.type
        decay = dtype(self.param.weight_decay) * dtype(self.net.params_weight_decay[param_id])
        kind = self.param.regularization_type
        if decay and kind not in ('L2', 'L1'):
            raise SolverError('Unknown regularization type: %r (use "L2" or "L1")' % kind)
        normalize = dtype(1.0 / self.param.iter_size) if self.param.iter_size != 1 else 1.0
        self.net.device.sgd_update(blob.dev_data, blob.dev_diff, self.history[param_id],
                                   normalize, decay, kind == 'L1', self.local_rate(param_id, rate),
                                   dtype(self.param.momentum))

    def compute_update_value(self, param_id, rate):
        # Reached only by subclasses with rules of their own that call it (update_param fuses
        # plain SGD); Caffe's momentum rule, operation by operation.
        self.net.device.adaptive_update('momentum', self.net.learnable_params[param_id].dev_diff,
                                        self.history[param_id], None,
                                        self.local_rate(param_id, rate), self.param.momentum,
                                        0.0, 0.0)


@register_solver('Nesterov')
class NesterovSolver(SGDSolver):
    """Nesterov's accelerated gradient (``type: "Nesterov"``)."""

    def compute_update_value(self, param_id, rate):
        self.net.device.adaptive_update('nesterov', self.net.learnable_params[param_id].dev_diff,
                                        self.history[param_id], None,
                                        self.local_rate(param_id, rate), self.param.momentum,
                                        0.0, 0.0)
