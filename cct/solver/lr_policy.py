"""Caffe's learning-rate policies (SGDSolver::GetLearningRate in src/caffe/solvers/sgd_solver.cpp).

``iter`` is the number of completed updates (0 for the first one). Two policies keep state in
``current_step``, which the solverstate saves: ``step`` recomputes it from ``iter`` on every call,
``multistep`` advances it by at most one per call, when ``iter`` has reached the next stepvalue, and
logs "MultiStep Status". The rate is rounded to the net's float type, as Caffe's ``Dtype rate`` is.
"""
import math

from cct.errors import SolverError
from cct.log import logger

POLICIES = ('fixed', 'step', 'exp', 'inv', 'multistep', 'poly', 'sigmoid')


def _need(condition, message):
    if not condition:
        raise SolverError(message)


def learning_rate(param, iteration, current_step):
    """The rate of update number ``iteration`` under ``param.lr_policy``.

    Args:
        param: the SolverParameter (base_lr, lr_policy, gamma, power, stepsize, stepvalue,
            max_iter).
        iteration: completed updates so far.
        current_step: the solver's current step (multistep/step state).

    Returns:
        (rate, current_step): the rate as a Python float and the possibly advanced step.

    Raises:
        SolverError: an unknown policy, or a policy whose parameters Caffe rejects.
    """
    policy = param.lr_policy
    base_lr = param.base_lr
    if policy == 'fixed':
        return base_lr, current_step
    if policy == 'step':
        _need(param.stepsize > 0, "lr_policy 'step' needs stepsize > 0 (got %d)" % param.stepsize)
        _need(param.gamma >= 0, "lr_policy 'step' needs gamma >= 0 (got %g)" % param.gamma)
        current_step = iteration // param.stepsize
        return base_lr * math.pow(param.gamma, current_step), current_step
    if policy == 'exp':
        _need(param.gamma >= 0, "lr_policy 'exp' needs gamma >= 0 (got %g)" % param.gamma)
        return base_lr * math.pow(param.gamma, iteration), current_step
    if policy == 'inv':
        _need(param.gamma >= 0, "lr_policy 'inv' needs gamma >= 0 (got %g)" % param.gamma)
        return base_lr * math.pow(1.0 + param.gamma * iteration, -param.power), current_step
    if policy == 'multistep':
        if current_step < len(param.stepvalue) and iteration >= param.stepvalue[current_step]:
            current_step += 1
            logger.info('MultiStep Status: Iteration %d, step = %d', iteration, current_step)
        _need(param.gamma >= 0, "lr_policy 'multistep' needs gamma >= 0 (got %g)" % param.gamma)
        return base_lr * math.pow(param.gamma, current_step), current_step
    if policy == 'poly':
        _need(param.max_iter > 0, "lr_policy 'poly' needs max_iter > 0 (got %d)" % param.max_iter)
        try:
            return base_lr * math.pow(1.0 - iteration / param.max_iter, param.power), current_step
        except ValueError:  # past max_iter with a fractional power: C's pow gives NaN
            return math.nan, current_step
    if policy == 'sigmoid':
        _need(param.gamma >= 0, "lr_policy 'sigmoid' needs gamma >= 0 (got %g)" % param.gamma)
        _need(param.stepsize > 0,
              "lr_policy 'sigmoid' needs stepsize > 0 (got %d)" % param.stepsize)
        return base_lr / (1.0 + math.exp(-param.gamma * (iteration - param.stepsize))), \
            current_step
    raise SolverError('Unknown learning rate policy: %r (lr_policy must be one of %s)'
                      % (policy, ', '.join(POLICIES)))
