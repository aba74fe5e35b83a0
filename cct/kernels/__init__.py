"""CPU kernels (Cython, in this package) behind a small set of primitives the layers call.

Layers never branch on backends: they call ``im2col``, ``col2im``, the pooling functions and ``gemm``
from here. A GPU backend supplies the same names for its array type.
"""
import numpy as np

from cct.kernels.im2col import col2im, im2col
from cct.kernels.pooling import (ave_pool_backward, ave_pool_forward, max_pool_backward,
                                 max_pool_forward)
from cct.kernels.stochastic_pooling import (stochastic_pool_backward_test,
                                            stochastic_pool_forward_test,
                                            stochastic_pool_forward_train)

__all__ = ['im2col', 'col2im', 'max_pool_forward', 'max_pool_backward', 'ave_pool_forward',
           'ave_pool_backward', 'stochastic_pool_forward_train', 'stochastic_pool_forward_test',
           'stochastic_pool_backward_test', 'gemm']


def gemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """``out = alpha * op(a) @ op(b) + beta * out`` through the BLAS numpy links against.

    ``beta=0`` writes straight into ``out`` with no temporary; other betas accumulate, which Caffe's
    parameter gradients rely on (they sum over iter_size passes and shared layers).
    """
    a = a.T if trans_a else a
    b = b.T if trans_b else b
    if beta == 0.0:
        np.matmul(a, b, out=out)
        if alpha != 1.0:
            out *= alpha
    else:
        product = np.matmul(a, b)
        if alpha != 1.0:
            product *= alpha
        if beta != 1.0:
            out *= beta
        out += product
    return out
