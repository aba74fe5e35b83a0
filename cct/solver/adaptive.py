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

from cct.errors import SolverError
from cct.solver.sgd import SGDSolver
from cct.solver.solver import register_solver


class _Adaptive(SGDSolver):
    def update_rule(self, rule, param_id, rate, momentum=0.0, momentum2=0.0, correction=1.0):
        """The device's ``adaptive_update`` of learnable param ``param_id`` with this solver's
        delta and histories (the second ones, for AdaDelta and Adam, follow all the first)."""
        count = len(self.net.learnable_params)
        second = self.history[count + param_id] if self.history_per_param == 2 else None
        self.net.device.adaptive_update(rule, self.net.learnable_params[param_id].dev_diff,
                                        self.history[param_id], second,
                                        self.local_rate(param_id, rate), momentum, momentum2,
                                        self.param.delta, correction)


class _NoMomentum(_Adaptive):
    def check_param(self):
        if self.param.momentum != 0:
            raise SolverError('%s: Momentum cannot be used with %s (momentum: %g)'
                              % (self.source, self.type, self.param.momentum))


@register_solver('AdaGrad')
class AdaGradSolver(_NoMomentum):
    """AdaGrad (``type: "AdaGrad"``)."""

    def compute_update_value(self, param_id, rate):
        self.update_rule('adagrad', param_id, rate)


@register_solver('RMSProp')
class RMSPropSolver(_NoMomentum):
    """RMSProp (``type: "RMSProp"``)."""

    def check_param(self):
        super().check_param()
        if not 0 <= self.param.rms_decay < 1:
            raise SolverError('%s: rms_decay should lie between 0 and 1 (got %g)'
                              % (self.source, self.param.rms_decay))

    def compute_update_value(self, param_id, rate):
        self.update_rule('rmsprop', param_id, rate, momentum=self.param.rms_decay)


@register_solver('AdaDelta')
class AdaDeltaSolver(_Adaptive):
    """AdaDelta (``type: "AdaDelta"``); ``momentum`` is the decay rate."""

    history_per_param = 2

    def compute_update_value(self, param_id, rate):
        self.update_rule('adadelta', param_id, rate, momentum=self.param.momentum)


@register_solver('Adam')
class AdamSolver(_Adaptive):
    """Adam (``type: "Adam"``): beta1 = ``momentum``, beta2 = ``momentum2``, eps = ``delta``."""

    history_per_param = 2

    def compute_update_value(self, param_id, rate):
        beta1 = self.dtype.type(self.param.momentum)
        beta2 = self.dtype.type(self.param.momentum2)
        t = self.iter + 1
        # Caffe's pow(Dtype, int) promotes to double; the correction is rounded once, at the end.
        correction = self.dtype.type(math.sqrt(1.0 - float(beta2) ** t) / (1.0 - float(beta1) ** t))
        self.update_rule('adam', param_id, rate, momentum=self.param.momentum,
                         momentum2=self.param.momentum2, correction=correction)
