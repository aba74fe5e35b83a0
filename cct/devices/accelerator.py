"""What cct's accelerator devices share (OpenCL in opencl.py, CUDA in cuda.py): every primitive
written once over a kernel *runtime* (cct/kernels/gpu/launch.py lists its verbs), which compiles the
one set of kernel sources (cct/kernels/gpu) for its backend, allocates, copies and launches.

Arrays are the runtime's (``pyopencl.array.Array``, CuPy arrays); kernels take each array as a
pointer plus an element offset, so 1-D slices and reshaped views work without sub-buffers.
Everything runs in order on the device's one queue (stream); only ``to_host`` and the reductions
that return Python floats wait. GEMM, convolution, pooling and LRN live in accelerator_ops.py; RNG
fills and solver updates in accelerator_updates.py. The OpenCL tests in CI run all of this code.
"""
import numpy as np

from cct.devices import accelerator_ops, accelerator_updates, composed_norm
from cct.devices.base import UNARY_OPS, Device
from cct.errors import DeviceError
from cct.kernels.gpu.launch import check_count

# devices/base.py UNARY_OPS rows as elementwise.cl's op codes.
OP_CODES = {'relu': 0, 'sigmoid': 1, 'tanh': 2, 'abs': 3, 'exp': 4, 'log': 5, 'power': 6,
            'bnll': 7, 'elu': 8, 'threshold': 9, 'clip': 10}
CHANNEL_OPS = {'add': 0, 'sub': 1, 'mul': 2, 'div': 3}
# Work-groups of partial sums a reduction returns to the host (then summed there in float64).
REDUCE_GROUPS = 256


def _int(value):
    return np.int32(value)


class AcceleratorDevice(accelerator_ops.OpsMixin, accelerator_updates.UpdatesMixin,
                        composed_norm.ComposedNormMixin, Device):
    """An accelerator's primitives over the kernel ``runtime`` its subclass opens and passes in."""

    host = False

    def __init__(self, index, runtime):
        super().__init__(index)
        self.runtime = runtime
        self.arg = runtime.arg
        self._scratch = {}
        self.seed(np.random.SeedSequence().entropy & accelerator_updates.MASK64)

    def unary_ops(self):
        return frozenset(UNARY_OPS)

    # ---------------------------------------------------------------- launching
    def _run(self, family, name, dtype, work, *args):
        self.runtime.launch(family, name, dtype, work, *args)

    def _real(self, dtype, value):
        return np.dtype(dtype).type(value)

    # ---------------------------------------------------------------- memory and transfer
    def empty(self, shape, dtype, what=None):
        return self.runtime.empty(_shape(shape), dtype, what)

    def zeros(self, shape, dtype, what=None):
        array = self.empty(shape, dtype, what)
        self.fill(array, 0)
        return array

    def from_host(self, host, out=None):
        host = np.ascontiguousarray(host)
        if out is None:
            out = self.empty(host.shape, host.dtype)
        elif out.size != host.size or out.dtype != host.dtype:
            raise DeviceError('from_host: %s %s into a device array of %s %s'
                              % (host.shape, host.dtype, out.shape, out.dtype))
        if host.size:
            self.runtime.write(host, out)
        return out

    def to_host(self, array, out=None):
        if out is None:
            out = np.empty(array.shape, array.dtype)
        elif out.size != array.size or out.dtype != array.dtype or not out.flags.c_contiguous:
            raise DeviceError('to_host: a device array of %s %s into a host array of %s %s'
                              % (array.shape, array.dtype, out.shape, out.dtype))
        if array.size:
            self.runtime.read(array, out)
        return out

    def copy(self, source, out):
        if source.size != out.size or source.dtype != out.dtype:
            raise DeviceError('copy: %s %s into %s %s' % (source.shape, source.dtype, out.shape,
                                                          out.dtype))
        if source.size and not self.runtime.same_memory(source, out):
            self.runtime.copy(source, out)

    def fill(self, out, value):
        if out.dtype.kind == 'f':
            self._run('elementwise', 'fill', out.dtype, out.size, _int(out.size),
                      self._real(out.dtype, value), *self.arg(out))
        elif out.size:   # masks and labels: the runtime's own fill, for any element type
            self.runtime.fill_raw(out, value)

    def scratch(self, purpose, shape, dtype):
        shape = _shape(shape)
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        key = (purpose, dtype)
        buffer = self._scratch.get(key)
        if buffer is None or buffer.size < count:
            buffer = self._scratch[key] = self.empty((max(count, 1),), dtype,
                                                     'scratch %r' % purpose)
        return buffer[:count].reshape(shape)

    def synchronize(self):
        self.runtime.synchronize()

    # ---------------------------------------------------------------- BLAS-like
    def axpby(self, alpha, x, beta, y):
        self._run('elementwise', 'axpby', y.dtype, y.size, _int(y.size),
                  self._real(y.dtype, alpha), *self.arg(x), self._real(y.dtype, beta), *self.arg(y))

    def scale(self, x, alpha, out):
        self._run('elementwise', 'scale', out.dtype, out.size, _int(out.size),
                  self._real(out.dtype, alpha), *self.arg(x), *self.arg(out))

    def mul(self, a, b, out):
        self._run('elementwise', 'mul', out.dtype, out.size, _int(out.size), *self.arg(a),
                  *self.arg(b), *self.arg(out))

    def strided_copy(self, source, out, outer, count, source_stride, source_offset, out_stride,
                     out_offset, accumulate=False):
        source_buffer, source_base = self.arg(source)
        out_buffer, out_base = self.arg(out)
        self._run('elementwise', 'strided_copy', out.dtype, outer * count, _int(outer),
                  _int(count), source_buffer, _int(source_base + source_offset),
                  _int(source_stride), out_buffer, _int(out_base + out_offset), _int(out_stride),
                  _int(bool(accumulate)))

    def channel_op(self, op, x, values, out, inner):
        if op not in CHANNEL_OPS:
            raise DeviceError('channel_op: unknown op %r (ops: %s)' % (op, ', '.join(CHANNEL_OPS)))
        self._run('elementwise', 'channel_op', out.dtype, out.size, _int(CHANNEL_OPS[op]),
                  _int(out.size), _int(values.size), _int(inner), *self.arg(x), *self.arg(values),
                  *self.arg(out))

    def _host_ints(self, purpose, values):
        """Host integers as a device int32 array (scratch: in-order queue, copied before return)."""
        values = np.ascontiguousarray(values, dtype=np.int32).reshape(-1)
        return self.from_host(values, out=self.scratch(purpose, values.shape, np.int32))

    def gather_rows(self, table, indices, out):
        rows, width = len(indices), table.shape[1]
        if rows:
            self._run('elementwise', 'gather_rows', out.dtype, rows * width, _int(rows),
                      _int(width), *self.arg(table),
                      *self.arg(self._host_ints('row_indices', indices)), *self.arg(out))

    def scatter_add_rows(self, values, indices, table):
        rows, width = len(indices), table.shape[1]
        if rows:
            self._run('elementwise', 'scatter_add_rows', table.dtype, width, _int(rows),
                      _int(width), *self.arg(values),
                      *self.arg(self._host_ints('row_indices', indices)), *self.arg(table))

    def copy_window(self, source, out, offsets, backward=False):
        if backward:
            self.fill(source, 0)
        if out.size == 0:
            return
        strides = np.cumprod((source.shape[1:] + (1,))[::-1])[::-1]
        geometry = self._host_ints('window_geometry', [len(out.shape), *out.shape, *strides,
                                                       *offsets])
        self._run('elementwise', 'copy_window', out.dtype, out.size, _int(out.size),
                  *self.arg(geometry), *self.arg(source), *self.arg(out), _int(bool(backward)))

    def add_bias(self, x, bias, inner):
        outer = x.size // max(bias.size * inner, 1)
        self._run('elementwise', 'add_bias', x.dtype, x.size, _int(outer), _int(bias.size),
                  _int(inner), *self.arg(x), *self.arg(bias))

    # ---------------------------------------------------------------- reductions
    def _reduce(self, op, a, b):
        if a.size == 0:
            return 0.0
        check_count(a.size, 'reduction')
        accum = np.float64 if self.runtime.has_fp64 else a.dtype
        partials = self.scratch('reduce_partials', (REDUCE_GROUPS,), accum)
        groups = min(REDUCE_GROUPS, -(-a.size // 64))
        self.runtime.launch_groups('reduction', 'reduce_partials', a.dtype, groups, _int(op),
                                   _int(a.size), *self.arg(a), *self.arg(b), self.arg(partials)[0])
        host = np.empty(groups, accum)
        self.runtime.read(partials[:groups], host)
        return float(host.sum(dtype=np.float64))

    def sum(self, x):
        return self._reduce(0, x, x)

    def asum(self, x):
        return self._reduce(1, x, x)

    def dot(self, a, b):
        return self._reduce(2, a, b)

    def sum_axis(self, x, out, outer, count, inner):
        self._run('reduction', 'sum_axis', out.dtype, outer * inner, _int(outer), _int(count),
                  _int(inner), *self.arg(x), *self.arg(out))

    def dot_rows(self, a, b, out):
        if out.size:
            self._run('reduction', 'dot_rows', out.dtype, out.size, _int(out.size),
                      _int(a.size // out.size), *self.arg(a), *self.arg(b), *self.arg(out))

    def channel_sum(self, x, out, inner, accumulate=True, wide=True):
        # Summed in ACCUM (float64 where the device has it) whether or not ``wide``: the interface
        # lets an accelerator sum wider than the CPU's dtype sums.
        self._channel_reduce(0, x, x, out, inner, accumulate)

    def _channel_reduce(self, op, x, y, out, inner, accumulate):
        if out.size == 0:
            return
        outer = x.size // max(out.size * inner, 1)
        self.runtime.launch_groups('reduction', 'channel_sum', x.dtype, out.size, _int(op),
                                   _int(outer), _int(out.size), _int(inner), *self.arg(x),
                                   *self.arg(y), *self.arg(out), _int(bool(accumulate)))

    # ---------------------------------------------------------------- neurons
    def _unary_scalars(self, op, dtype, scalars, backward):
        real = np.dtype(dtype).type
        missing = [name for name in UNARY_OPS.get(op, ()) if name not in scalars]
        if op not in OP_CODES or missing:
            raise DeviceError('unary op %r%s' % (op, ' needs %s' % ', '.join(missing)
                                                 if missing else ' is not one of UNARY_OPS'))
        s = {name: real(value) for name, value in scalars.items()}
        if op in ('exp', 'log'):
            # Caffe's exp_layer.cpp / log_layer.cpp constants, each rounded to Dtype.
            base = s['base']
            log_base = real(1) if base == -1 else real(np.log(base))
            if op == 'exp':
                outer = real(1) if s['shift'] == 0 else (
                    real(np.exp(s['shift'])) if base == -1 else real(base ** s['shift']))
                return real(log_base * s['scale']), outer, real(0)
            if backward:
                return s['scale'], s['shift'], real(s['scale'] / log_base)
            return s['scale'], s['shift'], real(real(1) / log_base)
        names = {'relu': ('slope',), 'power': ('power', 'scale', 'shift'), 'elu': ('alpha',),
                 'threshold': ('threshold',), 'clip': ('low', 'high')}.get(op, ())
        values = [s[name] for name in names] + [real(0)] * (3 - len(names))
        return tuple(values)

    def unary(self, op, x, out, **scalars):
        p = self._unary_scalars(op, out.dtype, scalars, False)
        self._run('elementwise', 'unary_forward', out.dtype, out.size, _int(OP_CODES[op]),
                  _int(out.size), *self.arg(x), *self.arg(out), *p)

    def unary_backward(self, op, x, y, dy, dx, **scalars):
        if op == 'threshold':
            raise DeviceError('unary op threshold has no gradient')
        p = self._unary_scalars(op, dx.dtype, scalars, True)
        x = dy if x is None else x
        y = dy if y is None else y
        self._run('elementwise', 'unary_backward', dx.dtype, dx.size, _int(OP_CODES[op]),
                  _int(dx.size), *self.arg(x), *self.arg(y), *self.arg(dy), *self.arg(dx), *p)

    def prelu(self, x, slopes, out, inner):
        self._run('elementwise', 'prelu_forward', out.dtype, out.size, _int(out.size),
                  _int(slopes.size), _int(inner), *self.arg(x), *self.arg(slopes), *self.arg(out))

    def prelu_backward(self, x, slopes, dy, dx, slope_diff, inner):
        # The slope gradient reads dy before dx (which may be dy) is written.
        if slope_diff is not None:
            self._channel_reduce(1, x, dy, slope_diff, inner if slopes.size > 1 else x.size,
                                 True)
        if dx is not None:
            self._run('elementwise', 'prelu_backward', dx.dtype, dx.size, _int(dx.size),
                      _int(slopes.size), _int(inner), *self.arg(x), *self.arg(slopes),
                      *self.arg(dy), *self.arg(dx))

    def max_update(self, x, index, out, mask):
        self._run('elementwise', 'max_update', out.dtype, out.size, _int(out.size), _int(index),
                  *self.arg(x), *self.arg(out), *self.arg(mask))

    def mask_select(self, dy, mask, index, dx):
        self._run('elementwise', 'mask_select', dx.dtype, dx.size, _int(dx.size), _int(index),
                  *self.arg(dy), *self.arg(mask), *self.arg(dx))

    def masked_scale(self, x, mask, out, scale):
        self._run('elementwise', 'masked_scale', out.dtype, out.size, _int(out.size), *self.arg(x),
                  *self.arg(mask), self._real(out.dtype, scale), *self.arg(out))

    # ---------------------------------------------------------------- softmax family
    def softmax(self, x, out, outer, channels, inner):
        self._run('reduction', 'softmax_forward', out.dtype, outer * inner, _int(outer),
                  _int(channels), _int(inner), *self.arg(x), *self.arg(out))

    def softmax_backward(self, y, dy, dx, outer, channels, inner):
        self._run('reduction', 'softmax_backward', dx.dtype, outer * inner, _int(outer),
                  _int(channels), _int(inner), *self.arg(y), *self.arg(dy), *self.arg(dx))

    def softmax_loss(self, prob, labels, outer, channels, inner, ignore_label=None):
        # Per-position losses on the device, then two float64 sums; the loss is rounded to prob's
        # dtype once (the CPU sums in the dtype, so float32 agrees to the tolerance, not bit for bit).
        losses = self.scratch('softmax_losses', (outer * inner,), prob.dtype)
        counts = self.scratch('softmax_counts', (outer * inner,), prob.dtype)
        self._run('reduction', 'softmax_loss', prob.dtype, outer * inner, _int(outer),
                  _int(channels), _int(inner), *self.arg(prob), *self.arg(labels),
                  *self.arg(losses), *self.arg(counts), _int(ignore_label is not None),
                  _int(ignore_label or 0))
        return prob.dtype.type(self.sum(losses)), int(round(self.sum(counts)))

    def sigmoid_cross_entropy(self, x, target, sigmoid, valid, ignore_label=None):
        # Per-element terms on the device, then float64 sums (the CPU sums in the dtype).
        terms = self.scratch('sigmoid_terms', (x.size,), x.dtype)
        counts = self.scratch('sigmoid_counts', (x.size,), x.dtype)
        if valid is None:
            valid = self.scratch('sigmoid_valid', (1,), np.int32)
        self._run('reduction', 'sigmoid_cross_entropy', x.dtype, x.size, _int(x.size), *self.arg(x),
                  *self.arg(target), *self.arg(sigmoid), *self.arg(terms), *self.arg(counts),
                  *self.arg(valid), _int(ignore_label is not None), _int(ignore_label or 0))
        count = x.size if ignore_label is None else int(round(self.sum(counts)))
        return x.dtype.type(-self.sum(terms)), count

    def softmax_loss_backward(self, prob, labels, dx, outer, channels, inner, ignore_label=None):
        self._run('reduction', 'softmax_loss_backward', dx.dtype, dx.size, _int(outer),
                  _int(channels), _int(inner), *self.arg(prob), *self.arg(labels), *self.arg(dx),
                  _int(ignore_label is not None), _int(ignore_label or 0))


def _shape(shape):
    return (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)
