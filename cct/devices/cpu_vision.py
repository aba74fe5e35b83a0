"""The CPU device's pooling and LRN: cct's Cython kernels (cct/kernels/pooling.pyx,
stochastic_pooling.pyx, lrn.pyx) behind the Device's plans, as the layers called them before."""
import numpy as np

from cct import kernels, rng, workspace
from cct.devices.base import LRNPlan, PoolPlan
from cct.kernels import lrn as lrn_kernels


def pool_plan(method, kernel, pad, stride, bottom_shape, top_shape, dtype):
    plan = PoolPlan(method, kernel, pad, stride, bottom_shape, top_shape, dtype)
    if method in ('max', 'stochastic_train'):
        # 16-bit argmaxes where planes allow (the kernel's sentinel for none is then 65535).
        small = method == 'max' and bottom_shape[2] * bottom_shape[3] < 65535
        plan.mask = np.empty(top_shape, np.uint16 if small else np.int32)
    if method == 'stochastic_train':
        plan.uniforms = np.empty(top_shape, dtype)
    return plan


def pool_forward(plan, bottom, top):
    (kh, kw), (ph, pw), (sh, sw) = plan.kernel, plan.pad, plan.stride
    if plan.method == 'max':
        kernels.max_pool_forward(bottom, top, plan.mask, kh, kw, ph, pw, sh, sw)
    elif plan.method == 'ave':
        kernels.ave_pool_forward(bottom, top, kh, kw, ph, pw, sh, sw)
    elif plan.method == 'stochastic_train':
        rng.generator().random(out=plan.uniforms, dtype=plan.dtype)
        kernels.stochastic_pool_forward_train(bottom, top, plan.mask, plan.uniforms, kh, kw,
                                              sh, sw)
    else:
        kernels.stochastic_pool_forward_test(bottom, top, kh, kw, sh, sw)


def pool_argmax(plan, out):
    out[...] = plan.mask
    if plan.mask.dtype == np.uint16:
        out[plan.mask == 65535] = -1


def pool_backward(plan, top_diff, bottom_diff, bottom=None, top=None):
    (kh, kw), (ph, pw), (sh, sw) = plan.kernel, plan.pad, plan.stride
    if plan.method in ('max', 'stochastic_train'):
        kernels.max_pool_backward(top_diff, plan.mask, bottom_diff)
    elif plan.method == 'ave':
        kernels.ave_pool_backward(top_diff, bottom_diff, kh, kw, ph, pw, sh, sw)
    else:
        kernels.stochastic_pool_backward_test(bottom, top, top_diff, bottom_diff, kh, kw,
                                              sh, sw)


def lrn_plan(region, size, alpha, beta, k, shape, dtype):
    plan = LRNPlan(region, size, alpha, beta, k, shape, dtype)
    if region == 'within':
        plan.scale = np.empty(shape, dtype)
        plan.factor = np.empty(shape, dtype)  # scale**-beta
    return plan


def _lrn_blocks(x):
    return workspace.scratch('lrn_blocks', (kernels.max_threads(),
                                            lrn_kernels.block_scratch_size(x.shape[1])),
                             x.dtype)


def lrn_forward(plan, bottom, top):
    x = bottom
    if plan.region == 'across':
        lrn_kernels.cross_channel_forward(_planes(x), _planes(top), plan.size,
                                          plan.alpha / plan.size, plan.k, plan.beta,
                                          _lrn_blocks(x))
        return
    rows = workspace.scratch('lrn_rows', x.shape, plan.dtype)
    lrn_kernels.within_channel_scale(x, rows, plan.scale, plan.size,
                                     plan.alpha / (plan.size * plan.size))
    lrn_kernels.apply_scale(x.reshape(-1), plan.scale.reshape(-1), top.reshape(-1),
                            plan.factor.reshape(-1), plan.beta)


def lrn_backward(plan, bottom, top, top_diff, bottom_diff):
    x, y, dy, dx = bottom, top, top_diff, bottom_diff
    if plan.region == 'across':
        lrn_kernels.cross_channel_backward(
            _planes(x), _planes(y), _planes(dy), _planes(dx), plan.size,
            plan.alpha / plan.size, plan.k, plan.beta,
            2.0 * plan.alpha * plan.beta / plan.size, _lrn_blocks(x))
    else:
        ratios = workspace.scratch('lrn_ratios', x.shape, plan.dtype)
        rows = workspace.scratch('lrn_rows', x.shape, plan.dtype)
        lrn_kernels.within_channel_backward(
            x, y, plan.scale, plan.factor, dy, ratios, rows, dx, plan.size,
            2.0 * plan.alpha * plan.beta / (plan.size * plan.size))


def _planes(array):
    return array.reshape(array.shape[0], array.shape[1], -1)
