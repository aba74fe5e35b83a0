"""Per-channel passes over (outer, channels, inner) arrays, split across cores by plane (one (o, c)
row of ``inner`` values): Scale's and Bias's broadcast operations and sums, and BatchNorm's
statistics, normalisation and gradient, fused with a following Scale (batch_norm_layer.cpp,
scale_layer.cpp, bias_layer.cpp).

Element-wise results are bit-identical to the numpy expressions they replace (each operation rounded
to the array's type, in the same order; the build turns off FMA contraction). Sums are taken in the
array's type, as Caffe's Dtype GEMVs, but in another order than numpy's: eight running sums per
plane, then the planes of a channel in order. BatchNorm's variance is the centred sum of squares
taken per plane around the plane's own mean while the plane is in cache, and the planes combined
exactly in float64 (Chan, Golub and LeVeque's pairwise update): one pass over memory instead of
Caffe's two, equal to Caffe's to rounding and as stable (no E[x^2] - E[x]^2 cancellation).
"""
import numpy as np

from cython.parallel cimport prange

ctypedef fused real:
    float
    double

cdef enum:
    ADD = 0
    SUB = 1
    MUL = 2
    DIV = 3

OPS = {'add': ADD, 'sub': SUB, 'mul': MUL, 'div': DIV}


cdef int _check(str kernel, Py_ssize_t count, Py_ssize_t channels, Py_ssize_t inner,
                tuple others) except -1:
    for name, size, expected in others:
        if size != expected:
            raise ValueError('%s: %s has %d values, expected %d' % (kernel, name, size, expected))
    if count and (channels < 1 or inner < 1 or count % (channels * inner)):
        raise ValueError('%s: %d values do not split into (outer, %d, %d)'
                         % (kernel, count, channels, inner))
    return 0


cdef inline real _sum(const real *x, Py_ssize_t n) noexcept nogil:
    """``sum(x[:n])`` in eight running sums (which the compiler keeps in vector lanes)."""
    cdef real a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        a0 = a0 + x[i]
        a1 = a1 + x[i + 1]
        a2 = a2 + x[i + 2]
        a3 = a3 + x[i + 3]
        a4 = a4 + x[i + 4]
        a5 = a5 + x[i + 5]
        a6 = a6 + x[i + 6]
        a7 = a7 + x[i + 7]
        i = i + 8
    while i < n:
        a0 = a0 + x[i]
        i = i + 1
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


cdef inline real _centred_squares(const real *x, Py_ssize_t n, real mean) noexcept nogil:
    """``sum((x[:n] - mean)**2)`` in eight running sums."""
    cdef real a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0, t
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        t = x[i] - mean
        a0 = a0 + t * t
        t = x[i + 1] - mean
        a1 = a1 + t * t
        t = x[i + 2] - mean
        a2 = a2 + t * t
        t = x[i + 3] - mean
        a3 = a3 + t * t
        t = x[i + 4] - mean
        a4 = a4 + t * t
        t = x[i + 5] - mean
        a5 = a5 + t * t
        t = x[i + 6] - mean
        a6 = a6 + t * t
        t = x[i + 7] - mean
        a7 = a7 + t * t
        i = i + 8
    while i < n:
        t = x[i] - mean
        a0 = a0 + t * t
        i = i + 1
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


def channel_op(str op, const real[::1] x, const real[::1] values, real[::1] out, Py_ssize_t inner):
    """``out[o, c, i] = x[o, c, i] OP values[c]`` (op 'add', 'sub', 'mul' or 'div'); in place
    allowed."""
    cdef Py_ssize_t channels = values.shape[0], count = x.shape[0], planes, p, i
    cdef int code = OPS[op]
    cdef real v
    cdef const real *src
    cdef real *dst
    _check('channel_op', count, channels, inner, (('out', out.shape[0], count),))
    if count == 0:
        return
    planes = count // inner
    for p in prange(planes, nogil=True, schedule='static'):
        v = values[p % channels]
        src = &x[p * inner]
        dst = &out[p * inner]
        if code == ADD:
            for i in range(inner):
                dst[i] = src[i] + v
        elif code == SUB:
            for i in range(inner):
                dst[i] = src[i] - v
        elif code == MUL:
            for i in range(inner):
                dst[i] = src[i] * v
        else:
            for i in range(inner):
                dst[i] = src[i] / v


def channel_sum(const real[::1] x, real[::1] out, Py_ssize_t inner, bint accumulate):
    """``out[c] (+)= sum over o, i of x[o, c, i]``, summed in x's type."""
    cdef Py_ssize_t channels = out.shape[0], count = x.shape[0], planes, p, c, o
    cdef real total
    _check('channel_sum', count, channels, inner, ())
    planes = count // inner if inner else 0
    cdef real[::1] partial = np.empty(planes, np.float32 if real is float else np.float64)
    for p in prange(planes, nogil=True, schedule='static'):
        partial[p] = _sum(&x[p * inner], inner)
    for c in range(channels):
        total = 0
        for o in range(c, planes, channels):
            total = total + partial[o]
        out[c] = out[c] + total if accumulate else total


def multiply(const real[::1] a, const real[::1] b, real[::1] out):
    """``out = a * b`` (flat; in place allowed)."""
    cdef Py_ssize_t i, count = a.shape[0]
    if b.shape[0] != count or out.shape[0] != count:
        raise ValueError('multiply: arrays differ in length (%d, %d, %d)'
                         % (count, b.shape[0], out.shape[0]))
    for i in prange(count, nogil=True, schedule='static'):
        out[i] = a[i] * b[i]


def batch_norm_statistics(const real[::1] x, real[::1] mean, real[::1] variance,
                          Py_ssize_t inner):
    """Per-channel mean and biased variance of x as (outer, channels, inner), in one pass."""
    cdef Py_ssize_t channels = mean.shape[0], count = x.shape[0], planes, p, c, o
    cdef double total, centred, spread, values
    _check('batch_norm_statistics', count, channels, inner, (('variance', variance.shape[0],
                                                              channels),))
    planes = count // inner if inner else 0
    cdef double[::1] sums = np.empty(planes)
    cdef double[::1] squares = np.empty(planes)
    cdef double[::1] centres = np.empty(planes)
    cdef real centre
    for p in prange(planes, nogil=True, schedule='static'):
        centre = _sum(&x[p * inner], inner)
        sums[p] = centre
        centre = centre / <real>inner
        centres[p] = centre
        squares[p] = _centred_squares(&x[p * inner], inner, centre)
    values = <double>(planes // channels) * inner
    for c in range(channels):
        total = 0
        for o in range(c, planes, channels):
            total = total + sums[o]
        total = total / values if values else 0
        centred = 0
        for o in range(c, planes, channels):
            # Chan et al.: sum (x - M)^2 = sum (x - a)^2 + 2 (a - M) sum (x - a) + n (a - M)^2
            # for the plane's centre a (its mean, rounded) and the channel's mean M.
            spread = centres[o] - total
            centred = centred + squares[o] + 2 * spread * (sums[o] - inner * centres[o]) + \
                inner * spread * spread
        mean[c] = <real>total
        variance[c] = <real>(centred / values if values else 0)


def batch_norm_forward(const real[::1] x, const real[::1] mean, const real[::1] std,
                       const real[::1] scale, const real[::1] bias, real[::1] out,
                       real[::1] normalised, Py_ssize_t inner):
    """``t = (x - mean[c]) / std[c]``; ``normalised = t`` (when not empty); ``out = t * scale[c]
    + bias[c]`` (each when not empty). ``out`` may be ``x``."""
    cdef Py_ssize_t channels = mean.shape[0], count = x.shape[0], planes, p, i
    cdef bint scaled = scale.shape[0] != 0, biased = bias.shape[0] != 0
    cdef bint keep = normalised.shape[0] != 0
    cdef real m, s, g, b, t
    _check('batch_norm_forward', count, channels, inner,
           (('std', std.shape[0], channels), ('out', out.shape[0], count),
            ('scale', scale.shape[0], channels if scaled else 0),
            ('bias', bias.shape[0], channels if biased else 0),
            ('normalised', normalised.shape[0], count if keep else 0)))
    if count == 0:
        return
    planes = count // inner
    for p in prange(planes, nogil=True, schedule='static'):
        m = mean[p % channels]
        s = std[p % channels]
        g = scale[p % channels] if scaled else 1
        b = bias[p % channels] if biased else 0
        for i in range(p * inner, (p + 1) * inner):
            t = (x[i] - m) / s
            if keep:
                normalised[i] = t
            if scaled:
                t = t * g
            if biased:
                t = t + b
            out[i] = t


def batch_norm_backward(const real[::1] top_diff, const real[::1] source, const real[::1] mean,
                        const real[::1] std, const real[::1] scale, real[::1] scaled_diff,
                        real[::1] bottom_diff, real[::1] sums, Py_ssize_t inner, bint recompute,
                        bint global_stats):
    """BatchNorm's gradient, after a Scale's when ``scale`` is not empty (then dy = dz * scale[c],
    else dy = dz; dz is ``top_diff``). ``xn`` is ``source``, or ``(source - mean) / std`` rounded
    as the forward did when ``recompute`` (source is then the bottom data).

    Pass 1: ``sums`` (4, channels) = sum dz, sum dz*xn, sum dy, sum dy*xn per channel (Scale's bias
    and scale gradients, BatchNorm's two means), writing dy into ``scaled_diff`` when it is not
    empty (it may be ``top_diff``). Pass 2, when ``bottom_diff`` is not empty: with batch
    statistics ``dx = ((xn*sums[3] + sums[2]) * (-1/m) + dy) / std`` (m values per channel; the
    operations of batch_norm.py's composition, in its order), with global statistics
    ``dx = dy / std``. ``bottom_diff`` may be ``top_diff``.
    """
    cdef Py_ssize_t channels = mean.shape[0], count = top_diff.shape[0], planes, p, i, o, c
    cdef bint scaled = scale.shape[0] != 0, write_dy = scaled_diff.shape[0] != 0
    cdef bint data = bottom_diff.shape[0] != 0
    cdef real m, s, g, d, y, xn, a0, a1, a2, a3, t0, t1, t2, t3, k
    _check('batch_norm_backward', count, channels, inner,
           (('source', source.shape[0], count), ('std', std.shape[0], channels),
            ('scale', scale.shape[0], channels if scaled else 0),
            ('scaled_diff', scaled_diff.shape[0], count if write_dy else 0),
            ('bottom_diff', bottom_diff.shape[0], count if data else 0),
            ('sums', sums.shape[0], 4 * channels)))
    planes = count // inner if inner else 0
    cdef real[:, ::1] partial = np.empty((planes, 4), np.float32 if real is float else np.float64)
    for p in prange(planes, nogil=True, schedule='static'):
        m = mean[p % channels]
        s = std[p % channels]
        g = scale[p % channels] if scaled else 1
        a0 = 0
        a1 = 0
        a2 = 0
        a3 = 0
        for i in range(p * inner, (p + 1) * inner):
            xn = (source[i] - m) / s if recompute else source[i]
            d = top_diff[i]
            y = d * g if scaled else d
            if write_dy:
                scaled_diff[i] = y
            a0 = a0 + d
            a1 = a1 + d * xn
            a2 = a2 + y
            a3 = a3 + y * xn
        partial[p, 0] = a0
        partial[p, 1] = a1
        partial[p, 2] = a2
        partial[p, 3] = a3
    for c in range(channels):
        t0 = 0
        t1 = 0
        t2 = 0
        t3 = 0
        for o in range(c, planes, channels):
            t0 = t0 + partial[o, 0]
            t1 = t1 + partial[o, 1]
            t2 = t2 + partial[o, 2]
            t3 = t3 + partial[o, 3]
        sums[c] = t0
        sums[channels + c] = t1
        sums[2 * channels + c] = t2
        sums[3 * channels + c] = t3
    if not data or planes == 0:
        return
    k = <real>(-1.0 / (count // channels))
    for p in prange(planes, nogil=True, schedule='static'):
        c = p % channels
        m = mean[c]
        s = std[c]
        g = scale[c] if scaled else 1
        t2 = sums[2 * channels + c]
        t3 = sums[3 * channels + c]
        for i in range(p * inner, (p + 1) * inner):
            if write_dy:
                y = scaled_diff[i]
            elif scaled:
                y = top_diff[i] * g
            else:
                y = top_diff[i]
            if global_stats:
                bottom_diff[i] = y / s
            else:
                xn = (source[i] - m) / s if recompute else source[i]
                bottom_diff[i] = ((xn * t3 + t2) * k + y) / s
