"""The CPU device: numpy arrays and cct's Cython kernels (cct/kernels) behind the Device primitives,
with today's lowering policy (``workspace.choose_lowering``: full, rows or panels per product) and
CcT partitions inside its convolution plans. Every primitive computes exactly what the layers did
before the seam, operation for operation, so no CPU number changed.
"""
import os

import numpy as np

from cct import kernels, rng, workspace
from cct.devices import cpu_conv, cpu_neurons, cpu_norm, cpu_solvers, cpu_vision
from cct.devices.base import UNARY_OPS, Device
from cct.kernels import channel, elementwise
from cct.kernels.update import sgd_step

FLT_MIN = np.finfo(np.float32).tiny
_none = cpu_norm.none_array


def cpu_model():
    """The processor's name (/proc/cpuinfo's model name, else what platform says)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def _memory_bytes():
    try:
        return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    except (ValueError, OSError, AttributeError):
        return None


def kernel_blas():
    """The BLAS cct's kernels call (scipy-openblas32's, not numpy's): name, version, threads."""
    try:
        import threadpoolctl
        for info in threadpoolctl.threadpool_info():
            if 'scipy_openblas' in os.path.basename(info.get('filepath', '')) and \
                    'openblas32' in info.get('filepath', ''):
                return '%s %s (%s, %s)' % (info.get('internal_api'), info.get('version'),
                                           info.get('architecture'), info.get('filepath'))
    except ImportError:
        pass
    import scipy_openblas32
    return 'scipy-openblas32 %s (%s)' % (getattr(scipy_openblas32, '__version__', '?'),
                                         scipy_openblas32.get_library())


def numpy_axpby(alpha, x, beta, y):
    """``y = alpha * x + beta * y`` in numpy, special-casing alpha of +-1 and beta of 0 or 1: the
    path under the multi-core kernel's size threshold, which the kernel matches bit for bit."""
    dtype = y.dtype.type
    if beta == 0:
        np.multiply(x, dtype(alpha), out=y)
        return
    if beta != 1:
        y *= dtype(beta)
    if alpha == 1:
        y += x
    elif alpha == -1:
        np.subtract(y, x, out=y)
    else:
        y += x * dtype(alpha)


class CPUDevice(cpu_norm.NormMixin, Device):
    """numpy + Cython; arrays are host arrays, so Blob views need no syncing."""

    kind = 'cpu'
    host = True

    def describe(self):
        return {'name': cpu_model(), 'memory': _memory_bytes(),
                'compute_units': kernels.max_threads(), 'blas': kernel_blas()}

    def unary_ops(self):
        return frozenset(UNARY_OPS)

    # memory
    def empty(self, shape, dtype):
        return np.empty(shape, dtype)

    def zeros(self, shape, dtype):
        return np.zeros(shape, dtype)

    def from_host(self, host, out=None):
        if out is None:
            return np.array(host, copy=True, order='C')
        out.reshape(-1)[...] = np.asarray(host).reshape(-1)
        return out

    def to_host(self, array, out=None):
        if out is None:
            return np.array(array, copy=True, order='C')
        out.reshape(-1)[...] = array.reshape(-1)
        return out

    def copy(self, source, out):
        if _parallel(out, source):
            elementwise.copy(source.reshape(-1), out.reshape(-1))
        else:
            out.reshape(-1)[...] = source.reshape(-1)

    def fill(self, out, value):
        if value == 0 and out.flags.c_contiguous:
            elementwise.zero(out.reshape(-1))
        else:
            out[...] = value

    def scratch(self, purpose, shape, dtype):
        return workspace.scratch(purpose, shape, dtype)

    # BLAS-like
    def gemm(self, a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
        kernels.gemm(a, b, out, trans_a=trans_a, trans_b=trans_b, alpha=alpha, beta=beta)

    def axpby(self, alpha, x, beta, y):
        if _parallel(y, x):
            elementwise.axpby(float(alpha), x.reshape(-1), float(beta), y.reshape(-1))
            return
        numpy_axpby(alpha, _like(x, y), beta, y)

    def scale(self, x, alpha, out):
        if _parallel(out, x):
            elementwise.scale(x.reshape(-1), float(alpha), out.reshape(-1))
            return
        np.multiply(_like(x, out), out.dtype.type(alpha), out=out)

    def add(self, a, b, out):
        if _parallel(out, a, b):
            elementwise.add(a.reshape(-1), b.reshape(-1), out.reshape(-1))
        else:
            np.add(_like(a, out), _like(b, out), out=out)

    def mul(self, a, b, out):
        if a.size == b.size == out.size and _kernel_ready(out, a, b):
            channel.multiply(a.reshape(-1), b.reshape(-1), out.reshape(-1))
        else:
            np.multiply(_like(a, out), _like(b, out), out=out)

    def strided_copy(self, source, out, outer, count, source_stride, source_offset, out_stride,
                     out_offset, accumulate=False):
        src = source.reshape(-1)[:outer * source_stride].reshape(outer, source_stride)
        dst = out.reshape(-1)[:outer * out_stride].reshape(outer, out_stride)
        part = src[:, source_offset:source_offset + count]
        if accumulate:
            dst[:, out_offset:out_offset + count] += part
        else:
            dst[:, out_offset:out_offset + count] = part

    def channel_op(self, op, x, values, out, inner):
        if x.size == out.size and _kernel_ready(out, x, values):
            channel.channel_op(op, x.reshape(-1), values.reshape(-1), out.reshape(-1), inner)
            return
        shape = (-1, values.size, inner)
        _CHANNEL_OPS[op](x.reshape(shape), values.reshape(1, -1, 1), out=out.reshape(shape))

    def gather_rows(self, table, indices, out):
        np.take(table, indices, axis=0, out=out[:len(indices)])

    def scatter_add_rows(self, values, indices, table):
        np.add.at(table, indices, values[:len(indices)])

    def copy_window(self, source, out, offsets, backward=False):
        window = tuple(slice(o, o + n) for o, n in zip(offsets, out.shape))
        if backward:
            source[...] = 0
            source[window] = out
        else:
            out[...] = source[window]

    def add_bias(self, x, bias, inner):
        x.reshape(-1, bias.size, inner)[...] += bias.reshape(-1, 1)

    # reductions
    def sum(self, x):
        return float(x.sum(dtype=np.float64))

    def asum(self, x):
        return float(np.abs(x).sum(dtype=np.float64))

    def dot(self, a, b):
        return float(np.dot(a.reshape(-1), b.reshape(-1)))

    def sum_axis(self, x, out, outer, count, inner):
        np.sum(x.reshape(outer, count, inner), axis=1, out=out.reshape(outer, inner))

    def dot_rows(self, a, b, out):
        rows = out.size
        if rows:
            np.einsum('ij,ij->i', a.reshape(rows, -1), b.reshape(rows, -1),
                      out=out.reshape(rows))

    def channel_sum(self, x, out, inner, accumulate=True, wide=True):
        if not wide and _kernel_ready(out, x):
            channel.channel_sum(x.reshape(-1), out.reshape(-1), inner, accumulate)
            return
        if not wide:
            sums = x.reshape(-1, out.size, inner).sum(axis=(0, 2)).reshape(out.shape)
        elif inner == 1:
            sums = x.reshape(-1, out.size).sum(axis=0, dtype=np.float64)
        else:
            sums = x.reshape(-1, out.size, inner).sum(axis=(0, 2), dtype=np.float64)
        if accumulate:
            out[...] += sums
        else:
            out[...] = sums

    # neurons
    def unary(self, op, x, out, **scalars):
        cpu_neurons.forward(op, x, out, scalars)

    def unary_backward(self, op, x, y, dy, dx, **scalars):
        cpu_neurons.backward(op, x, y, dy, dx, scalars)

    def prelu(self, x, slopes, out, inner):
        cpu_neurons.prelu(x, slopes, out, inner)

    def prelu_backward(self, x, slopes, dy, dx, slope_diff, inner):
        cpu_neurons.prelu_backward(x, slopes, dy, dx, slope_diff, inner)

    def max_update(self, x, index, out, mask):
        x = _like(x, out)
        mask = _like(mask, out)
        if index == 0:
            out[...] = x
            mask[...] = 0
        elif index == 1:
            mask[...] = out <= x  # a tie goes to bottom 1, as Caffe's a > b test
            np.maximum(out, x, out=out)
        else:
            mask[x > out] = index
            np.maximum(out, x, out=out)

    def mask_select(self, dy, mask, index, dx):
        np.multiply(_like(dy, dx), _like(mask, dx) == index, out=dx)

    def dropout_mask(self, mask, ratio):
        uniforms = workspace.scratch('dropout_uniforms', mask.shape, np.float32)
        rng.generator().random(out=uniforms, dtype=np.float32)
        np.greater_equal(uniforms, ratio, out=mask.view(np.bool_))

    def masked_scale(self, x, mask, out, scale):
        elementwise.masked_scale(x.reshape(-1), mask.reshape(-1), out.reshape(-1),
                                 out.dtype.type(scale))

    # softmax family
    def softmax(self, x, out, outer, channels, inner):
        shape = (outer, channels) if inner == 1 else (outer, channels, inner)
        x3, out3 = x.reshape(shape), out.reshape(shape)
        # A diverged net's infinite inputs give NaN, as in Caffe, which the loss check names;
        # numpy's warning would only repeat it without the layer.
        with np.errstate(invalid='ignore'):
            np.subtract(x3, x3.max(axis=1, keepdims=True), out=out3)
            np.exp(out3, out=out3)
            out3 /= out3.sum(axis=1, keepdims=True)

    def softmax_backward(self, y, dy, dx, outer, channels, inner):
        shape = (outer, channels) if inner == 1 else (outer, channels, inner)
        y3, dy3 = y.reshape(shape), dy.reshape(shape)
        dot = (dy3 * y3).sum(axis=1, keepdims=True)
        np.multiply(dy3 - dot, y3, out=dx.reshape(shape))

    def softmax_loss(self, prob, labels, outer, channels, inner, ignore_label=None):
        labels = labels.reshape(outer, inner).astype(np.int64)
        valid = np.ones(labels.shape, bool) if ignore_label is None else labels != ignore_label
        safe = np.where(valid, labels, 0)
        picked = np.take_along_axis(prob.reshape(outer, channels, inner), safe[:, None, :],
                                    axis=1)[:, 0, :]
        logs = np.log(np.maximum(picked, FLT_MIN), dtype=prob.dtype)
        return -logs[valid].sum(dtype=prob.dtype), int(valid.sum())

    def sigmoid_cross_entropy(self, x, target, sigmoid, valid, ignore_label=None):
        x, target = x.reshape(-1), target.reshape(-1)
        # Caffe's CPU sigmoid, kept for backward.
        sigmoid.reshape(-1)[...] = np.tanh(0.5 * x) * 0.5 + 0.5
        positive = (x >= 0).astype(x.dtype)
        terms = x * (target - positive) - np.log1p(np.exp(x - 2 * x * positive))
        if ignore_label is None:
            return -terms.sum(), x.size
        keep = target.astype(np.int64) != ignore_label
        valid.reshape(-1)[...] = keep
        return -terms[keep].sum(), int(keep.sum())

    def softmax_loss_backward(self, prob, labels, dx, outer, channels, inner, ignore_label=None):
        labels = labels.reshape(outer, inner).astype(np.int64)
        valid = np.ones(labels.shape, bool) if ignore_label is None else labels != ignore_label
        diff = dx.reshape(outer, channels, inner)
        diff[...] = prob.reshape(diff.shape)
        outer_idx, inner_idx = np.nonzero(valid)
        diff[outer_idx, labels[outer_idx, inner_idx], inner_idx] -= 1
        if ignore_label is not None:
            diff *= valid[:, None, :]

    # convolution (cpu_conv.py), pooling and LRN (cpu_vision.py)
    def conv_plan(self, num, image_channels, image_hw, col_channels, col_hw, group, kernel, pad,
                  stride, dilation, dtype):
        return cpu_conv.plan(num, image_channels, image_hw, col_channels, col_hw, group, kernel,
                             pad, stride, dilation, dtype)

    def conv_forward(self, plan, images, weights, bias, out):
        cpu_conv.forward(plan, images, weights, _none(plan.dtype) if bias is None else bias, out)

    def conv_backward_data(self, plan, rows, weights, bias, images):
        cpu_conv.backward_data(plan, rows, weights, _none(plan.dtype) if bias is None else bias,
                               images)

    def conv_backward_weights(self, plan, images, rows, weight_diff, bias_diff):
        cpu_conv.backward_weights(plan, images, rows, weight_diff,
                                  _none(plan.dtype) if bias_diff is None else bias_diff)

    def im2col(self, plan, images, col):
        kernels.im2col(images, col, *plan.geometry())

    def col2im(self, plan, col, images):
        kernels.col2im(col, images, *plan.geometry())

    def pool_plan(self, method, kernel, pad, stride, bottom_shape, top_shape, dtype):
        return cpu_vision.pool_plan(method, kernel, pad, stride, bottom_shape, top_shape, dtype)

    def pool_forward(self, plan, bottom, top):
        cpu_vision.pool_forward(plan, bottom, top)

    def pool_argmax(self, plan, out):
        cpu_vision.pool_argmax(plan, out)

    def pool_backward(self, plan, top_diff, bottom_diff, bottom=None, top=None):
        cpu_vision.pool_backward(plan, top_diff, bottom_diff, bottom, top)

    def lrn_plan(self, region, size, alpha, beta, k, shape, dtype):
        return cpu_vision.lrn_plan(region, size, alpha, beta, k, shape, dtype)

    def lrn_forward(self, plan, bottom, top):
        cpu_vision.lrn_forward(plan, bottom, top)

    def lrn_backward(self, plan, bottom, top, top_diff, bottom_diff):
        cpu_vision.lrn_backward(plan, bottom, top, top_diff, bottom_diff)

    # RNG: the process generator (cct.rng), so CPU runs keep their numbers.
    def seed(self, seed):
        rng.set_random_seed(seed)

    def rng_uniform(self, out, low, high):
        out[...] = rng.generator().uniform(low, high, out.shape)

    def rng_gaussian(self, out, mean, std):
        out[...] = rng.generator().normal(mean, std, out.shape)

    # solver updates
    def sgd_update(self, data, diff, history, normalize, decay, l1, rate, momentum):
        sgd_step(data.reshape(-1), diff.reshape(-1), history.reshape(-1), normalize, decay, l1,
                 rate, momentum)

    def regularize(self, data, diff, decay, l1):
        cpu_solvers.regularize(data, diff, decay, l1)

    def adaptive_update(self, rule, diff, history, history2, rate, momentum, momentum2, delta,
                        correction=1.0):
        cpu_solvers.adaptive_update(rule, diff, history, history2, rate, momentum, momentum2,
                                    delta, correction)


_CHANNEL_OPS = {'add': np.add, 'sub': np.subtract, 'mul': np.multiply, 'div': np.divide}


def _kernel_ready(out, *inputs):
    """Whether the channel kernels take these arrays: contiguous, of out's float type (numpy
    handles the rest: mixed types, strided views)."""
    dtype = out.dtype
    if dtype != np.float32 and dtype != np.float64:
        return False
    return out.flags.c_contiguous and out.flags.writeable and all(
        a.dtype == dtype and a.flags.c_contiguous for a in inputs)


# Below this many values a pass stays in numpy: waking the threads costs more than it saves (the
# kernels' own threshold, cct/kernels/parallel.pxd).
PARALLEL_MIN = elementwise.parallel_min


def _parallel(out, *inputs):
    """Whether a flat pass over these arrays runs as a multi-core kernel (cct/kernels/
    elementwise.pyx; the same bits as the numpy it replaces): one count, contiguous, one float
    type, large enough to be worth the threads (ResNet-50's Eltwise and Split passes)."""
    return out.size >= PARALLEL_MIN and _kernel_ready(out, *inputs) and all(
        a.size == out.size for a in inputs)


def _like(array, out):
    """``array`` in ``out``'s shape (flat primitives take any shapes of one count)."""
    return array if array.shape == out.shape else array.reshape(out.shape)


_DEVICE = None


def count():
    return 1


def unavailable():
    return None


def open_device(index):
    global _DEVICE
    if index != 0:
        raise ValueError('there is one CPU device, cpu (index 0)')
    if _DEVICE is None:
        _DEVICE = CPUDevice(0)
    return _DEVICE

