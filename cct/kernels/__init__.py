"""CPU kernels (Cython, in this package) behind a small set of primitives the layers call.

Layers never branch on backends: they call ``gemm``, the lowered convolution products, ``im2col``,
``col2im`` and the pooling functions from here. A GPU backend supplies the same names for its array
type.

Threads: every kernel splits its work over OpenMP's threads (one per core), and the GEMMs inside
them are single-threaded BLAS calls, one per thread: Caffe con Troll's layout, in which cores meet
once per operation instead of inside every GEMM. The BLAS is the OpenBLAS of the scipy-openblas32
package, cct's own copy (numpy's keeps its threads), loaded here before the kernels that link it.
"""
import scipy_openblas32  # noqa: F401  (loads libscipy_openblas.so for the kernels below)
from cct.kernels.depthwise import (depthwise_backward_data, depthwise_forward,
                                   depthwise_scratch, depthwise_weight_grad)
from cct.kernels.gemm import gemm
from cct.kernels.lowering import (col2im, im2col, lowered_backward_data, lowered_forward,
                                  lowered_weight_grad, max_threads, panel_backward_data,
                                  panel_forward, panel_sizes, panel_weight_grad,
                                  row_lowered_backward_data,
                                  row_lowered_forward, row_lowered_weight_grad, row_lowering_rows)
from cct.kernels.pooling import (ave_pool_backward, ave_pool_forward, max_pool_backward,
                                 max_pool_forward)
from cct.kernels.stochastic_pooling import (stochastic_pool_backward_test,
                                            stochastic_pool_forward_test,
                                            stochastic_pool_forward_train)

__all__ = ['im2col', 'col2im', 'lowered_forward', 'lowered_backward_data', 'lowered_weight_grad',
           'row_lowered_forward', 'row_lowered_backward_data', 'row_lowered_weight_grad',
           'row_lowering_rows', 'panel_forward', 'panel_backward_data', 'panel_weight_grad',
           'panel_sizes', 'max_threads', 'max_pool_forward', 'max_pool_backward', 'ave_pool_forward',
           'ave_pool_backward', 'stochastic_pool_forward_train', 'stochastic_pool_forward_test',
           'stochastic_pool_backward_test', 'gemm', 'depthwise_forward',
           'depthwise_backward_data', 'depthwise_weight_grad', 'depthwise_scratch']

