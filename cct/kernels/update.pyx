"""Caffe's whole momentum-SGD step for one parameter blob in one pass over memory (sgd_solver.cpp's
Normalize, Regularize and ComputeUpdateValue, then Blob::Update).

Done one numpy operation at a time the step reads and writes the parameter's three arrays about
fifteen times; fused it touches each once, split across cores. Each element sees exactly Caffe's
operations in Caffe's order, each rounded to the blob's type (the build turns off FMA contraction),
so the result is bit-identical to the unfused sequence.
"""
from cython.parallel cimport prange

from cct.kernels.parallel cimport PARALLEL_MIN

ctypedef fused real:
    float
    double


def sgd_step(real[::1] data, real[::1] diff, real[::1] history, double normalize, double decay,
             bint l1, double rate, double momentum):
    """One SGD step, in place, over flat arrays of one length.

    ``g = diff * normalize`` (skipped when 1); ``g += decay * data`` (L2) or ``decay * sign(data)``
    (L1; skipped when decay is 0); ``history = rate * g + momentum * history``; ``diff = history``;
    ``data -= history``.
    """
    cdef Py_ssize_t i, count = data.shape[0]
    cdef real scale = <real>normalize, local_decay = <real>decay
    cdef real local_rate = <real>rate, beta = <real>momentum
    cdef real g, s
    cdef bint scaled = scale != 1, regularized = local_decay != 0
    if diff.shape[0] != count or history.shape[0] != count:
        raise ValueError('sgd_step: data, diff and history differ in length (%d, %d, %d)'
                         % (count, diff.shape[0], history.shape[0]))
    for i in prange(count, nogil=True, schedule='static', use_threads_if=count >= PARALLEL_MIN):
        g = diff[i]
        if scaled:
            g = g * scale
        if regularized:
            if l1:
                # caffe_cpu_sign: (0 < x) - (x < 0), so a NaN weight contributes 0.
                s = <real>((data[i] > 0) - (data[i] < 0))
                g = g + local_decay * s
            else:
                g = g + local_decay * data[i]
        g = g * local_rate
        g = history[i] * beta + g
        history[i] = g
        diff[i] = g
        data[i] = data[i] - g
