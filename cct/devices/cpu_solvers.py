"""The CPU device's solver arithmetic (Caffe's sgd_solver.cpp Regularize and each solver's
ComputeUpdateValue), numpy operation for operation in Caffe's order; the fused momentum-SGD step is
cct/kernels/update.pyx."""
import numpy as np

from cct.workspace import scratch


def regularize(data, diff, decay, l1):
    dtype = diff.dtype.type
    buffer = scratch('solver_regularize', diff.shape, diff.dtype)
    if not l1:
        np.multiply(data, dtype(decay), out=buffer)
    else:
        np.sign(data, out=buffer)
        buffer *= dtype(decay)
    diff += buffer


def adaptive_update(rule, diff, history, history2, rate, momentum, momentum2, delta, correction):
    t = diff.dtype.type
    one = t(1)
    update = scratch('solver_update', diff.shape, diff.dtype)
    if rule == 'momentum':
        np.multiply(diff, t(rate), out=diff)
        np.multiply(history, t(momentum), out=history)
        history += diff
        diff[...] = history
    elif rule == 'nesterov':
        momentum = t(momentum)
        update[...] = history   # the previous history
        np.multiply(diff, t(rate), out=diff)
        np.multiply(history, momentum, out=history)
        history += diff
        np.multiply(history, one + momentum, out=diff)
        update *= momentum
        diff -= update
    elif rule == 'adagrad':
        np.square(diff, out=update)
        history += update
        np.sqrt(history, out=update)
        update += t(delta)
        np.divide(diff, update, out=diff)
        diff *= t(rate)
    elif rule == 'rmsprop':
        decay = t(momentum)
        np.square(diff, out=update)
        update *= one - decay
        history *= decay
        history += update
        np.sqrt(history, out=update)
        update += t(delta)
        np.divide(diff, update, out=diff)
        diff *= t(rate)
    elif rule == 'adadelta':
        momentum, delta = t(momentum), t(delta)
        denominator = scratch('solver_update_2', diff.shape, diff.dtype)
        np.square(diff, out=update)
        update *= one - momentum
        history *= momentum
        history += update
        np.add(history2, delta, out=update)
        np.add(history, delta, out=denominator)
        update /= denominator
        np.sqrt(update, out=update)
        diff *= update
        np.square(diff, out=update)
        update *= one - momentum
        history2 *= momentum
        history2 += update
        diff *= t(rate)
    elif rule == 'adam':
        beta1, beta2 = t(momentum), t(momentum2)
        np.square(diff, out=update)
        update *= one - beta2
        history2 *= beta2
        history2 += update
        diff *= one - beta1
        history *= beta1
        history += diff
        np.sqrt(history2, out=update)
        update += t(delta)
        np.divide(history, update, out=diff)
        diff *= t(rate) * t(correction)
    else:
        raise ValueError('unknown update rule %r' % rule)
