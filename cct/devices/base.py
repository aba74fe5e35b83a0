"""The Device interface: where a net's arrays live and the fixed set of primitives its layers,
Net and solvers call (DESIGN.md "Kernels and devices" lists them and the rules they share).

Conventions every primitive follows (the CPU device is the reference; an accelerator must give
the same numbers to float64 1e-10 / float32 1e-4 relative, and bit-identical where noted):

- *Device arrays* are what ``empty``/``zeros``/``from_host`` return: numpy arrays on the CPU,
  ``pyopencl.array.Array`` on OpenCL, CuPy arrays on CUDA. They are C-contiguous and support
  ``.shape``, ``.dtype``, ``.size``, ``.reshape(shape)`` (a view sharing memory) and, on 1-D
  arrays, ``a[start:stop]`` (a view). Nothing else is assumed of them: layers reach their values
  only through the primitives below.
- dtypes are float32 or float64 for values; the dtype of every value argument of one call is the
  same. Shapes are given as in the docstrings; an argument documented as flat may be any shape of
  that count. ``out`` arguments are written, never resized; unless a docstring says otherwise an
  output may be the same array as an input (in place) but must not partially overlap one.
- Scalars (``alpha``, slopes, rates) arrive as Python floats and are rounded to the arrays'
  dtype before use, as Caffe's Dtype members are.
- Primitives run in order on one queue; results that return to Python (``to_host``, ``sum``,
  ``asum``, ``dot``) wait for everything queued before them. ``synchronize`` waits for all.
- A device that lacks a primitive leaves it unimplemented; ``Device.supports(name)`` says so, and
  a net built on that device names the layer that needs it (never a silent host fallback).
"""
from cct.devices.plans import ConvPlan, LRNPlan, PoolPlan  # noqa: F401  (the interface)

# Operations of ``unary``/``unary_backward`` (Caffe's neuron layers) and their scalars. Forward
# ``y = f(x)``; backward ``dx = dy * f'(x)`` written with x and/or y as the docstrings say.
UNARY_OPS = {
    'relu': ('slope',),      # y = x if x > 0 else slope*x;  dx = dy * (1 if x > 0 else slope)
    'sigmoid': (),           # y = 0.5*tanh(0.5*x) + 0.5;   dx = dy * y*(1-y)
    'tanh': (),              # y = tanh(x);                  dx = dy * (1-y*y)
    'abs': (),               # y = |x|;                      dx = dy * sign(x)
    'exp': ('base', 'scale', 'shift'),    # y = base**(shift + scale*x) (base -1 means e);
                                          # dx = dy * y * ln(base)*scale
    'log': ('base', 'scale', 'shift'),    # y = log_base(shift + scale*x) (base -1 means e);
                                          # dx = dy * scale / ((shift + scale*x) * ln(base))
    'power': ('power', 'scale', 'shift'),  # y = (shift + scale*x)**power;
                                           # dx = dy * power*scale*(shift + scale*x)**(power-1)
    'bnll': (),              # y = x + log1p(exp(-x)) if x > 0 else log1p(exp(x));
                             # dx = dy * e/(1+e), e = exp(min(x, 50))  (Caffe's kBNLL_THRESHOLD)
    'elu': ('alpha',),       # y = x if x > 0 else alpha*(exp(x)-1);  dx = dy * (1 if x > 0 else y+alpha)
    'threshold': ('threshold',),  # y = 1 if x > threshold else 0 (no backward)
    'clip': ('low', 'high'),  # y = min(max(x, low), high);  dx = dy * (low <= x <= high)
}


class Device:
    """A place arrays live and primitives run. Subclasses implement the primitives they can.

    Attributes:
        kind: 'cpu', 'opencl' or 'cuda'; index: the number within its kind (CPU: 0).
        name: what ``str(device)`` and messages show, e.g. ``opencl:0``.
        host: True when device arrays are host numpy arrays (no transfers, no syncing).
    """

    kind = 'abstract'
    host = False

    def __init__(self, index=0):
        self.index = index

    @property
    def name(self):
        return '%s:%d' % (self.kind, self.index) if self.kind != 'cpu' else 'cpu'

    def __str__(self):
        return self.name

    def __repr__(self):
        return '<Device %s>' % self.name

    def supports(self, primitive, op=None):
        """Whether this device implements ``primitive`` (a method name below; for ``unary`` and
        ``unary_backward`` also the op)."""
        method = getattr(type(self), primitive, None)
        if method is None or method is getattr(Device, primitive, None):
            return False
        if op is not None and primitive in ('unary', 'unary_backward'):
            return op in self.unary_ops()
        return True

    def unary_ops(self):
        """The ``UNARY_OPS`` names this device's ``unary``/``unary_backward`` implement."""
        return frozenset()

    def describe(self):
        """A dict for ``cct device_query`` and the training log: at least 'name' (the hardware's
        own name), 'memory' (bytes, or None), 'compute_units'; more keys are printed as given."""
        raise NotImplementedError(self._missing('describe'))

    def _missing(self, primitive):
        return 'device %s does not implement %s' % (self.name, primitive)

    # ---------------------------------------------------------------- memory and transfer
    def empty(self, shape, dtype):
        """A new device array of ``shape`` and ``dtype``; values undefined."""
        raise NotImplementedError(self._missing('empty'))

    def zeros(self, shape, dtype):
        """A new device array of ``shape`` and ``dtype`` holding zeros."""
        raise NotImplementedError(self._missing('zeros'))

    def from_host(self, host, out=None):
        """Copy numpy ``host`` to the device: into ``out`` (same size and dtype; returned) or a
        new array of host's shape. ``host`` need not be contiguous."""
        raise NotImplementedError(self._missing('from_host'))

    def to_host(self, array, out=None):
        """Copy device ``array`` to numpy: into ``out`` (a C-contiguous numpy array of the same
        size and dtype; returned) or a new array of array's shape. Waits for queued work."""
        raise NotImplementedError(self._missing('to_host'))

    def copy(self, source, out):
        """``out[...] = source`` (same size and dtype)."""
        raise NotImplementedError(self._missing('copy'))

    def fill(self, out, value):
        """``out[...] = value``."""
        raise NotImplementedError(self._missing('fill'))

    def scratch(self, purpose, shape, dtype):
        """A device array of ``shape`` for ``purpose`` (a string), reusing one growing buffer per
        (purpose, dtype): values undefined; two purposes never alias each other."""
        raise NotImplementedError(self._missing('scratch'))

    def synchronize(self):
        """Wait until every queued primitive has finished (``cct time`` calls it per layer)."""

    # ---------------------------------------------------------------- BLAS-like
    def gemm(self, a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
        """``out = alpha * op(a) @ op(b) + beta * out`` on 2-D arrays, op = transpose when asked
        (``a`` is (K, M) with trans_a, else (M, K); ``b`` is (N, K) with trans_b, else (K, N);
        ``out`` (M, N)). With beta == 0, ``out``'s old values (even NaN) are ignored. ``out``
        must not alias ``a`` or ``b``."""
        raise NotImplementedError(self._missing('gemm'))

    def axpby(self, alpha, x, beta, y):
        """``y = alpha * x + beta * y`` (flat, same size). With beta == 0, y's old values are
        ignored; alpha == 1 and beta == 1 give exactly ``y + x``."""
        raise NotImplementedError(self._missing('axpby'))

    def scale(self, x, alpha, out):
        """``out = alpha * x`` (flat)."""
        raise NotImplementedError(self._missing('scale'))

    def add(self, a, b, out):
        """``out = a + b`` elementwise (flat): one pass where ``scale`` + ``axpby`` take two.
        Optional: Eltwise SUM and Split fall back to those where a device lacks it."""
        raise NotImplementedError(self._missing('add'))

    def mul(self, a, b, out):
        """``out = a * b`` elementwise (flat)."""
        raise NotImplementedError(self._missing('mul'))

    def strided_copy(self, source, out, outer, count, source_stride, source_offset, out_stride,
                     out_offset, accumulate=False):
        """For o in range(outer): ``out[o*out_stride + out_offset : +count] (+)= source[o*
        source_stride + source_offset : +count]`` on flat arrays (Concat, Slice, Crop rows)."""
        raise NotImplementedError(self._missing('strided_copy'))

    def channel_op(self, op, x, values, out, inner):
        """``x`` and ``out`` viewed as (outer, len(values), inner): ``out[o, c, i] = x[o, c, i]
        OP values[c]`` for ``op`` in 'add', 'sub', 'mul', 'div' (Scale, Bias, BatchNorm, MVN).
        ``out`` may be ``x``."""
        raise NotImplementedError(self._missing('channel_op'))

    def gather_rows(self, table, indices, out):
        """``out[r] = table[indices[r]]`` for r < len(indices): ``table`` and ``out`` are 2-D
        device arrays of one row length, ``indices`` a host numpy integer array (already checked
        to lie in range by the layer). Embed, Filter, BatchReindex."""
        raise NotImplementedError(self._missing('gather_rows'))

    def scatter_add_rows(self, values, indices, table):
        """``table[indices[r]] += values[r]`` for each r in order (repeated indices add up, as
        ``numpy.add.at``); 2-D device arrays, host numpy ``indices``."""
        raise NotImplementedError(self._missing('scatter_add_rows'))

    def copy_window(self, source, out, offsets, backward=False):
        """N-d crop (Crop): ``out[...] = source[window]``, the window starting at ``offsets`` (one
        per axis) and of ``out``'s shape; with ``backward``, ``source`` is overwritten instead:
        zeros everywhere, ``source[window] = out``."""
        raise NotImplementedError(self._missing('copy_window'))

    def add_bias(self, x, bias, inner):
        """``x`` viewed as (outer, len(bias), inner): ``x[o, c, i] += bias[c]`` (in place)."""
        raise NotImplementedError(self._missing('add_bias'))

    # ---------------------------------------------------------------- reductions
    def sum(self, x):
        """The sum of ``x``'s values as a Python float, accumulated in float64."""
        raise NotImplementedError(self._missing('sum'))

    def asum(self, x):
        """The sum of ``|x|`` as a Python float, accumulated in float64."""
        raise NotImplementedError(self._missing('asum'))

    def dot(self, a, b):
        """``sum(a * b)`` as a Python float, accumulated in float64 (sumsq: ``dot(x, x)``)."""
        raise NotImplementedError(self._missing('dot'))

    def sum_axis(self, x, out, outer, count, inner):
        """``out[o, i] = sum over t of x[o, t, i]`` with ``x`` viewed as (outer, count, inner) and
        ``out`` as (outer, inner), summed in the dtype (CPU: ``numpy.sum`` over that axis; Tile's
        gradient, Reduction)."""
        raise NotImplementedError(self._missing('sum_axis'))

    def dot_rows(self, a, b, out):
        """``out[r] = sum over j of a[r, j] * b[r, j]`` with ``a`` and ``b`` viewed as
        (len(out), -1), summed in the dtype (CPU: ``numpy.einsum('ij,ij->i')``; an accelerator may
        sum wider). Reduction SUMSQ, ContrastiveLoss's squared distances (``a`` is ``b``)."""
        raise NotImplementedError(self._missing('dot_rows'))

    def channel_sum(self, x, out, inner, accumulate=True, wide=True):
        """``x`` viewed as (outer, len(out), inner): ``out[c] (+)= sum over o, i of x[o, c, i]``,
        summed in float64 and rounded once (the bias gradient of Convolution/InnerProduct); with
        ``wide=False`` the CPU sums in x's dtype, as Caffe's Dtype GEMVs do for Scale, Bias and
        BatchNorm (an accelerator may still sum wider)."""
        raise NotImplementedError(self._missing('channel_sum'))

    # ---------------------------------------------------------------- BatchNorm (+ Scale)
    def batch_norm_statistics(self, x, mean, variance, inner):
        """``x`` viewed as (outer, len(mean), inner): ``mean[c]`` and ``variance[c]`` = the mean
        and the biased variance (centred sum of squares / count) of channel c's values, in the
        dtype (CPU: one pass, per-plane centred sums combined exactly; cct/kernels/channel.pyx)."""
        raise NotImplementedError(self._missing('batch_norm_statistics'))

    def batch_norm_forward(self, x, mean, std, out, inner, scale=None, bias=None,
                           normalised=None):
        """``x`` as (outer, len(mean), inner): ``t = (x - mean[c]) / std[c]``; ``normalised = t``
        when given; ``out = t * scale[c] + bias[c]`` (each factor when given), every operation
        rounded to the dtype in this order (BatchNorm then an in-place Scale, fused). ``out`` may
        be ``x``; ``normalised`` aliases neither."""
        raise NotImplementedError(self._missing('batch_norm_forward'))

    def batch_norm_backward(self, top_diff, source, mean, std, sums, inner, recompute=False,
                            scale=None, scaled_diff=None, bottom_diff=None, global_stats=False):
        """BatchNorm's gradient, after an in-place Scale's when ``scale`` is given. With
        ``dz = top_diff``, ``dy = dz * scale[c]`` (or dz) and ``xn = source``, or
        ``(source - mean) / std`` rounded as the forward when ``recompute`` (source is then the
        bottom data): ``sums`` (4 * channels) gets, per channel, sum dz, sum dz*xn, sum dy,
        sum dy*xn (summed in the dtype on the CPU); dy is written into ``scaled_diff`` when given
        (it may be ``top_diff``); when ``bottom_diff`` is given it gets
        ``((xn * sums[3] + sums[2]) * (-1/m) + dy) / std`` (m values per channel), or
        ``dy / std`` with ``global_stats``. ``bottom_diff`` may be ``top_diff``."""
        raise NotImplementedError(self._missing('batch_norm_backward'))

    # ---------------------------------------------------------------- neuron family
    def unary(self, op, x, out, **scalars):
        """``out = f(x)`` for ``op`` in ``UNARY_OPS`` with its named scalars (flat)."""
        raise NotImplementedError(self._missing('unary'))

    def unary_backward(self, op, x, y, dy, dx, **scalars):
        """``dx = dy * f'(x)`` for ``op`` in ``UNARY_OPS`` (formulas there); ``x`` is the bottom
        data, ``y`` the top data (either may be unused by an op). ``dx`` may alias ``dy``."""
        raise NotImplementedError(self._missing('unary_backward'))

    def prelu(self, x, slopes, out, inner):
        """``x`` as (outer, len(slopes), inner): ``out = max(x, 0) + slopes[c] * min(x, 0)``
        (one shared slope: ``len(slopes) == 1``). ``out`` may be ``x``."""
        raise NotImplementedError(self._missing('prelu'))

    def prelu_backward(self, x, slopes, dy, dx, slope_diff, inner):
        """PReLU's gradients: ``slope_diff[c] += sum over o, i of min(x, 0) * dy`` (skipped when
        None; summed in the dtype on the CPU), then ``dx = dy * (1 if x > 0 else slopes[c])``
        (skipped when None). ``dx`` may be ``dy``."""
        raise NotImplementedError(self._missing('prelu_backward'))

    def max_update(self, x, index, out, mask):
        """Eltwise MAX's running maximum over bottoms (eltwise_layer.cpp): ``index`` 0:
        ``out = x``, ``mask = 0``; index 1: ``mask = (out <= x)`` (a tie goes to bottom 1),
        ``out = max(out, x)``; index >= 2: where ``x > out``: ``out = x``, ``mask = index``.
        ``mask`` is int32 of out's size."""
        raise NotImplementedError(self._missing('max_update'))

    def mask_select(self, dy, mask, index, dx):
        """``dx = dy where mask == index, else 0`` (int32 ``mask``; Eltwise MAX's gradient)."""
        raise NotImplementedError(self._missing('mask_select'))

    def dropout_mask(self, mask, ratio):
        """Fill uint8 ``mask`` with 1 where a uniform draw u in [0, 1) has ``u >= ratio``, else 0
        (Bernoulli(1 - ratio)); the device's RNG (``seed``)."""
        raise NotImplementedError(self._missing('dropout_mask'))

    def masked_scale(self, x, mask, out, scale):
        """``out = x * mask * scale`` with uint8 ``mask`` (flat)."""
        raise NotImplementedError(self._missing('masked_scale'))

    # ---------------------------------------------------------------- softmax family
    def softmax(self, x, out, outer, channels, inner):
        """``x`` as (outer, channels, inner): ``out = exp(x - max_c) / sum_c exp(x - max_c)``
        along the channel axis."""
        raise NotImplementedError(self._missing('softmax'))

    def softmax_backward(self, y, dy, dx, outer, channels, inner):
        """``dx = (dy - sum_c(dy * y)) * y`` along the channel axis of (outer, channels, inner)."""
        raise NotImplementedError(self._missing('softmax_backward'))

    def softmax_loss(self, prob, labels, outer, channels, inner, ignore_label=None):
        """Returns ``(loss, count)``: over the positions (o, i) of (outer, inner) whose label
        ``l = labels[o, i]`` (float, as Caffe's label blob) is not ``ignore_label``, ``loss`` is
        the sum of ``-log(max(prob[o, l, i], FLT_MIN))`` accumulated in prob's dtype (a numpy
        scalar of it on the CPU, where it is numpy's pairwise sum over those positions in order)
        and ``count`` how many there are (an int). Labels outside [0, channels) other than the
        ignored one are the caller's to check."""
        raise NotImplementedError(self._missing('softmax_loss'))

    def sigmoid_cross_entropy(self, x, target, sigmoid, valid, ignore_label=None):
        """SigmoidCrossEntropyLoss's forward on flat arrays: ``sigmoid = 0.5*tanh(0.5*x) + 0.5``
        (kept for the backward); per element ``p = (x >= 0)``, ``term = x*(target - p) -
        log1p(exp(x - 2*x*p))``. With ``ignore_label`` given, int32 ``valid`` gets
        ``int(target) != ignore_label`` and only valid terms count; otherwise ``valid`` is
        untouched. Returns ``(loss, count)``: ``-sum(valid terms)`` in x's dtype (numpy's
        pairwise sum on the CPU) and the number of valid elements."""
        raise NotImplementedError(self._missing('sigmoid_cross_entropy'))

    def softmax_loss_backward(self, prob, labels, dx, outer, channels, inner, ignore_label=None):
        """``dx = prob`` with 1 subtracted at each (o, labels[o, i], i); every channel of a
        position whose label is ``ignore_label`` is 0. (The caller scales by the loss weight.)"""
        raise NotImplementedError(self._missing('softmax_loss_backward'))

    # ---------------------------------------------------------------- convolution
    def conv_plan(self, num, image_channels, image_hw, col_channels, col_hw, group, kernel, pad,
                  stride, dilation, dtype):
        """A ``ConvPlan`` (or a subclass) for these shapes; made at reshape, reused until the
        shapes change. May allocate scratch."""
        raise NotImplementedError(self._missing('conv_plan'))

    def conv_forward(self, plan, images, weights, bias, out):
        """Caffe's forward_cpu_gemm over the batch: per image n and group g,
        ``out[n, g] = weights[g] @ im2col(images[n])[g]`` (+ ``bias[c]`` per column-side channel
        when ``bias`` is not None). images: (num, image_channels, *image_hw); weights:
        (col_channels, col_rows/group); bias: (col_channels,) or None; out: (num, col_channels,
        col_pixels)."""
        raise NotImplementedError(self._missing('conv_forward'))

    def conv_backward_data(self, plan, rows, weights, bias, images):
        """Caffe's backward_cpu_gemm: ``images[n] = col2im(weights^T @ rows[n])`` per group,
        overwriting ``images``, plus ``bias[c]`` per image-side channel when not None
        (Deconvolution's forward). rows: (num, col_channels, col_pixels)."""
        raise NotImplementedError(self._missing('conv_backward_data'))

    def conv_backward_weights(self, plan, images, rows, weight_diff, bias_diff):
        """Caffe's weight_cpu_gemm: ``weight_diff += rows[n] @ im2col(images[n])^T`` summed over
        the batch per group (skipped when ``weight_diff`` is None), and, when ``bias_diff`` is
        not None, ``bias_diff[c] += sum over n and pixels of rows[n, c]``."""
        raise NotImplementedError(self._missing('conv_backward_weights'))

    def im2col(self, plan, images, col):
        """Lower ``images`` (n, image_channels, *image_hw), n <= plan.num, into ``col``
        (col_rows, n*col_pixels): row (c*kh + i)*kw + j, column image*col_pixels + pixel;
        padding reads as 0."""
        raise NotImplementedError(self._missing('im2col'))

    def col2im(self, plan, col, images):
        """Scatter-add ``col`` (layout of ``im2col``) into ``images``, which is overwritten."""
        raise NotImplementedError(self._missing('col2im'))

    # ---------------------------------------------------------------- pooling and LRN
    def pool_plan(self, method, kernel, pad, stride, bottom_shape, top_shape, dtype):
        """A ``PoolPlan`` holding the argmax mask / random draws the method needs."""
        raise NotImplementedError(self._missing('pool_plan'))

    def pool_forward(self, plan, bottom, top):
        """Caffe's pooling forward (pooling_layer.cpp) of (N, C, H, W) ``bottom`` into ``top``:
        'max' keeps Caffe's first maximum of each window in the plan's mask; 'ave' divides by the
        window clipped to the padded image (Caffe's pool_size); 'stochastic_train' samples a
        window position with probability proportional to its (non-negative) value, from the
        device's RNG, and remembers it; 'stochastic_test' is sum(x^2)/sum(x) per window."""
        raise NotImplementedError(self._missing('pool_forward'))

    def pool_argmax(self, plan, out):
        """Write the last 'max' forward's argmax (index h*W + w within the plane, as a float of
        ``out``'s dtype; -1 where a window saw no value) into ``out`` (the top shape)."""
        raise NotImplementedError(self._missing('pool_argmax'))

    def pool_backward(self, plan, top_diff, bottom_diff, bottom=None, top=None):
        """Pooling's data gradient, overwriting ``bottom_diff``: 'max' and 'stochastic_train'
        route each top gradient to the remembered position; 'ave' spreads it over the window /
        pool_size; 'stochastic_test' weights by x/sum(x) (needs ``bottom`` and ``top``)."""
        raise NotImplementedError(self._missing('pool_backward'))

    def lrn_plan(self, region, size, alpha, beta, k, shape, dtype):
        """An ``LRNPlan`` holding the scale buffers."""
        raise NotImplementedError(self._missing('lrn_plan'))

    def lrn_forward(self, plan, bottom, top):
        """Caffe's CPU LRN (lrn_layer.cpp): across channels ``scale = k + alpha/size * sum of
        x^2 over the size channels centred on c`` (zero-padded); within a channel
        ``scale = 1 + alpha/size^2 * sum of x^2 over the size x size window``; ``top = bottom *
        scale^-beta``. ``top`` must not alias ``bottom``."""
        raise NotImplementedError(self._missing('lrn_forward'))

    def lrn_backward(self, plan, bottom, top, top_diff, bottom_diff):
        """LRN's data gradient (Caffe's CrossChannelBackward_cpu / the within-channel chain of
        Power, Pooling and Eltwise), overwriting ``bottom_diff``, after ``lrn_forward`` of the same
        plan."""
        raise NotImplementedError(self._missing('lrn_backward'))

    # ---------------------------------------------------------------- RNG
    def seed(self, seed):
        """Reseed the device's generator (Caffe's set_random_seed)."""

    def rng_uniform(self, out, low, high):
        """Fill ``out`` with draws from U[low, high)."""
        raise NotImplementedError(self._missing('rng_uniform'))

    def rng_gaussian(self, out, mean, std):
        """Fill ``out`` with draws from N(mean, std^2)."""
        raise NotImplementedError(self._missing('rng_gaussian'))

    # ---------------------------------------------------------------- solver updates
    def sgd_update(self, data, diff, history, normalize, decay, l1, rate, momentum):
        """Caffe's whole momentum-SGD step in place on flat arrays (cct/kernels/update.pyx, each
        operation rounded to the dtype, no FMA): ``g = diff*normalize`` (skipped when 1);
        ``g += decay*data`` (L2) or ``decay*sign(data)`` (``l1``; skipped when decay is 0);
        ``g *= rate``; ``history = history*momentum + g``; ``diff = history``; ``data -= history``."""
        raise NotImplementedError(self._missing('sgd_update'))

    def regularize(self, data, diff, decay, l1):
        """``diff += decay * data`` (L2) or ``decay * sign(data)`` (``l1``, sign(0) = 0)."""
        raise NotImplementedError(self._missing('regularize'))

    def adaptive_update(self, rule, diff, history, history2, rate, momentum, momentum2, delta,
                        correction=1.0):
        """Turn the regularised gradient ``diff`` into the step in place, Caffe's
        ComputeUpdateValue (see cct/solver/adaptive.py and sgd.py for the exact operation order):
        'momentum': h = m*h + rate*g; diff = h  (sgd_update's rule, step by step).
        'nesterov': h' = m*h + rate*g; diff = (1+m)*h' - m*h.
        'adagrad':  h += g^2; diff = rate * g / (sqrt(h) + delta).
        'rmsprop':  h = m*h + (1-m)*g^2 (m = rms_decay); diff = rate * g / (sqrt(h) + delta).
        'adadelta': h = m*h + (1-m)*g^2; u = g*sqrt((h2+delta)/(h+delta));
                    h2 = m*h2 + (1-m)*u^2; diff = rate*u.
        'adam':     h = m*h + (1-m)*g; h2 = m2*h2 + (1-m2)*g^2;
                    diff = rate*correction * h/(sqrt(h2)+delta).
        ``history2`` is None for the one-history rules."""
        raise NotImplementedError(self._missing('adaptive_update'))
