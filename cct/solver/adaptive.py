"""The adaptive solvers: AdaGrad, RMSProp, AdaDelta and Adam (Caffe's adagrad_solver.cpp,
rmsprop_solver.cpp, adadelta_solver.cpp, adam_solver.cpp), each exactly as Caffe computes it.

With g the regularised gradient, a = local_rate, d = ``delta``:
AdaGrad ``h += g^2; step = a*g/(sqrt(h)+d)`` (momentum must be 0);
RMSProp ``h = r*h + (1-r)*g^2; step = a*g/(sqrt(h)+d)`` (r = rms_decay in [0, 1); momentum 0);
AdaDelta, with m = momentum as the decay, ``h = m*h + (1-m)*g^2; u = g*sqrt((h2+d)/(h+d));
h2 = m*h2 + (1-m)*u^2; step = a*u``;
Adam, t = iter+1, ``m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
step = a*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v)+d)`` (d added to the root of the *uncorrected* v).
AdaDelta and Adam keep two history arrays per param: all the first ones, then all the second ones
(that order is the solverstate's).
"""
import math

import numpy as np

from cct.errors import SolverError
from cct.solver.sgd import SGDSolver
from cct.solver.solver import register_solver
from cct.workspace import scratch


class _NoMomentum(SGDSolver):
    def check_param(self):
        if self.param.momentum != 0:
            raise SolverError('%s: Momentum cannot be used with %s (momentum: %g)'
                              % (self.source, self.type, self.param.momentum))


@register_solver('AdaGrad')
class AdaGradSolver(_NoMomentum):
    """AdaGrad (``type: "AdaGrad"``)."""

    def compute_update_value(self, param_id, rate):
        diff = self.net.learnable_params[param_id].diff
        history = self.history[param_id]
        update = scratch('solver_update', history.shape, self.dtype)
        np.square(diff, out=update)
        history += update
        np.sqrt(history, out=update)
        update += self.dtype.type(self.param.delta)
        np.divide(diff, update, out=diff)
        diff *= self.local_rate(param_id, rate)


@register_solver('RMSProp')
class RMSPropSolver(_NoMomentum):
    """RMSProp (``type: "RMSProp"``)."""

    def check_param(self):
        super().check_param()
        if not 0 <= self.param.rms_decay < 1:
            raise SolverError('%s: rms_decay should lie between 0 and 1 (got %g)'
                              % (self.source, self.param.rms_decay))

    def compute_update_value(self, param_id, rate):
        diff = self.net.learnable_params[param_id].diff
        history = self.history[param_id]
        decay = self.dtype.type(self.param.rms_decay)
        update = scratch('solver_update', history.shape, self.dtype)
        np.square(diff, out=update)
        update *= self.dtype.type(1) - decay
        history *= decay
        history += update
        np.sqrt(history, out=update)
        update += self.dtype.type(self.param.delta)
        np.divide(diff, update, out=diff)
        diff *= self.local_rate(param_id, rate)


@register_solver('AdaDelta')
class AdaDeltaSolver(SGDSolver):
    """AdaDelta (``type: "AdaDelta"``); ``momentum`` is the decay rate."""

    history_per_param = 2

    def compute_update_value(self, param_id, rate):
        diff = self.net.learnable_params[param_id].diff
        count = len(self.net.learnable_params)
        gradients, updates = self.history[param_id], self.history[count + param_id]
        momentum = self.dtype.type(self.param.momentum)
        delta = self.dtype.type(self.param.delta)
        update = scratch('solver_update', diff.shape, self.dtype)
        denominator = scratch('solver_update_2', diff.shape, self.dtype)
        np.square(diff, out=update)
        update *= self.dtype.type(1) - momentum
        gradients *= momentum
        gradients += update
        np.add(updates, delta, out=update)
        np.add(gradients, delta, out=denominator)
        update /= denominator
        np.sqrt(update, out=update)
        diff *= update
        np.square(diff, out=update)
        update *= self.dtype.type(1) - momentum
        updates *= momentum
        updates += update
        diff *= self.local_rate(param_id, rate)


@register_solver('Adam')
class AdamSolver(SGDSolver):
    """Adam (``type: "Adam"``): beta1 = ``momentum``, beta2 = ``momentum2``, eps = ``delta``."""

    history_per_param = 2

    def compute_update_value(self, param_id, rate):
        diff = self.net.learnable_params[param_id].diff
        count = len(self.net.learnable_params)
        first, second = self.history[param_id], self.history[count + param_id]
        one = self.dtype.type(1)
        beta1 = self.dtype.type(self.param.momentum)
        beta2 = self.dtype.type(self.param.momentum2)
        t = self.iter + 1
        # Caffe's pow(Dtype, int) promotes to double; the correction is rounded once, at the end.
        correction = self.dtype.type(math.sqrt(1.0 - float(beta2) ** t) / (1.0 - float(beta1) ** t))
        update = scratch('solver_update', diff.shape, self.dtype)
        np.square(diff, out=update)
        update *= one - beta2
        second *= beta2
        second += update
        diff *= one - beta1
        first *= beta1
        first += diff
        np.sqrt(second, out=update)
        update += self.dtype.type(self.param.delta)
        np.divide(first, update, out=diff)
        diff *= self.local_rate(param_id, rate) * correction
