"""Per-channel passes over (outer, channels, inner) arrays, split across cores by plane (one (o, c)
row of ``inner`` values): Scale's and Bias's broadcast operations and sums, and BatchNorm's
statistics, normalisation and gradient, fused with a following Scale (batch_norm_layer.cpp,
scale_layer.cpp, bias_layer.cpp).

Element-wise results are bit-identical to the numpy expressions they replace (each operation rounded
to the array's type, in the same order; the build turns off FMA contraction). Sums are taken in the
array's type, as Caffe's Dtype GEMVs, but in another order than numpy's: 32 (16 for the gradient's
four) running sums per plane, then the planes of a channel in order; or, for short planes, one set
of running sums over all of a channel's planes. BatchNorm's variance is the centred sum of squares
taken per plane around the plane's own mean while the plane is in cache, and the planes combined
exactly in float64 (Chan, Golub and LeVeque's pairwise update): one pass over memory instead of
Caffe's two, equal to Caffe's to rounding and as stable (no E[x^2] - E[x]^2 cancellation); short
planes take Caffe's two passes over the channel, the second from cache.
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


DEF LANES = 32   # running sums per reduction: whole vectors of them on AVX-512, AVX2 and SSE
DEF BLOCK = 16   # elements per step of the gradient's four sums (four vectors of running sums)
# Planes shorter than this are reduced channel by channel (each thread sums a channel's planes into
# one set of running sums) rather than plane by plane: setting up and adding up the running sums
# costs about what 300 values do, which dominated ResNet-50's 14x14 and 7x7 BatchNorms (2-core
# Zen-4: statistics 2.3x and 2.4x faster; the gradient's sums 1.5x at 7x7). From 28x28 on, planes
# win: a channel's strided planes made the gradient's sums 2.4x slower there.
cdef Py_ssize_t short_plane = 256


def set_short_plane(Py_ssize_t values):
    """Reduce planes shorter than ``values`` channel by channel (tests run both ways); returns the
    previous threshold."""
    global short_plane
    previous, short_plane = short_plane, values
    return previous


cdef inline real _lanes_total(real *acc, Py_ssize_t lanes) noexcept nogil:
    """The running sums ``acc[:lanes]`` (32 or 16) added pairwise: halves folded onto each other
    down to eight (whole vectors, constant trip counts), then a fixed tree."""
    cdef Py_ssize_t j
    if lanes == 32:
        for j in range(16):
            acc[j] = acc[j] + acc[j + 16]
    for j in range(8):
        acc[j] = acc[j] + acc[j + 8]
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))


cdef inline void _add_lanes(real *acc, const real *x, Py_ssize_t n) noexcept nogil:
    """``acc[:LANES] += x[:n]``, element i into sum i % LANES (independent lanes the compiler keeps
    in vector registers: no reassociation needed, so no fast-math), what is left in blocks of 8
    into the first 8 and the last few into the first."""
    cdef Py_ssize_t i = 0, j
    while i + LANES <= n:
        for j in range(LANES):
            acc[j] = acc[j] + x[i + j]
        i = i + LANES
    while i + 8 <= n:   # short planes (7x7: 49 values) keep most of the tail in vectors too
        for j in range(8):
            acc[j] = acc[j] + x[i + j]
        i = i + 8
    while i < n:
        acc[0] = acc[0] + x[i]
        i = i + 1


cdef inline void _add_centred(real *acc, const real *x, Py_ssize_t n, real mean) noexcept nogil:
    """``acc[:LANES] += (x[:n] - mean)**2``, lane by lane as _add_lanes."""
    cdef real t
    cdef Py_ssize_t i = 0, j
    while i + LANES <= n:
        for j in range(LANES):
            t = x[i + j] - mean
            acc[j] = acc[j] + t * t
        i = i + LANES
    while i + 8 <= n:
        for j in range(8):
            t = x[i + j] - mean
            acc[j] = acc[j] + t * t
        i = i + 8
    while i < n:
        t = x[i] - mean
        acc[0] = acc[0] + t * t
        i = i + 1


cdef inline real _sum(const real *x, Py_ssize_t outer, Py_ssize_t stride,
                      Py_ssize_t n) noexcept nogil:
    """The sum of ``outer`` runs of ``n`` values, ``stride`` apart (one plane, or one channel's
    planes), in one set of LANES running sums (_add_lanes)."""
    cdef real acc[LANES]
    cdef Py_ssize_t j, o
    for j in range(LANES):
        acc[j] = 0
    for o in range(outer):
        _add_lanes(acc, x + o * stride, n)
    return _lanes_total(acc, LANES)


cdef inline real _centred_squares(const real *x, Py_ssize_t outer, Py_ssize_t stride,
                                  Py_ssize_t n, real mean) noexcept nogil:
    """``sum((x - mean)**2)`` over ``outer`` runs of ``n`` values, as _sum (_add_centred)."""
    cdef real acc[LANES]
    cdef Py_ssize_t j, o
    for j in range(LANES):
        acc[j] = 0
    for o in range(outer):
        _add_centred(acc, x + o * stride, n, mean)
    return _lanes_total(acc, LANES)


cdef inline void _add_gradient(real *a, const real *dz, const real *source, real *dy,
                               Py_ssize_t n, real m, real s, real g,
                               bint write_dy) noexcept nogil:
    """``a[0:BLOCK] += dz``, ``a[BLOCK:2 BLOCK] += dz*xn``, ``a[2 BLOCK:3 BLOCK] += dy``,
    ``a[3 BLOCK:4 BLOCK] += dy*xn`` lane by lane, with ``xn = (source - m) / s`` and ``dy = dz *
    g`` (m = 0, s = 1 and g = 1 give xn = source and dy = dz exactly), writing dy when
    ``write_dy``; the tail into the first lane of each."""
    cdef real d, y, xn
    cdef Py_ssize_t i = 0, j
    while i + BLOCK <= n:
        if write_dy:
            for j in range(BLOCK):
                xn = (source[i + j] - m) / s
                d = dz[i + j]
                y = d * g
                dy[i + j] = y
                a[j] = a[j] + d
                a[BLOCK + j] = a[BLOCK + j] + d * xn
                a[2 * BLOCK + j] = a[2 * BLOCK + j] + y
                a[3 * BLOCK + j] = a[3 * BLOCK + j] + y * xn
        else:
            for j in range(BLOCK):
                xn = (source[i + j] - m) / s
                d = dz[i + j]
                y = d * g
                a[j] = a[j] + d
                a[BLOCK + j] = a[BLOCK + j] + d * xn
                a[2 * BLOCK + j] = a[2 * BLOCK + j] + y
                a[3 * BLOCK + j] = a[3 * BLOCK + j] + y * xn
        i = i + BLOCK
    while i < n:
        xn = (source[i] - m) / s
        d = dz[i]
        y = d * g
        if write_dy:
            dy[i] = y
        a[0] = a[0] + d
        a[BLOCK] = a[BLOCK] + d * xn
        a[2 * BLOCK] = a[2 * BLOCK] + y
        a[3 * BLOCK] = a[3 * BLOCK] + y * xn
        i = i + 1


cdef inline void _gradient_sums(const real *dz, const real *source, real *dy, Py_ssize_t outer,
                                Py_ssize_t stride, Py_ssize_t n, real m, real s, real g,
                                bint write_dy, real *out) noexcept nogil:
    """``out[0:4]`` = sum dz, sum dz*xn, sum dy, sum dy*xn over ``outer`` runs of ``n`` values
    ``stride`` apart (_add_gradient; one plane, or one channel's planes)."""
    cdef real a[4 * BLOCK]
    cdef Py_ssize_t j, o
    for j in range(4 * BLOCK):
        a[j] = 0
    for o in range(outer):
        _add_gradient(a, dz + o * stride, source + o * stride,
                      dy + o * stride if write_dy else NULL, n, m, s, g, write_dy)
    for j in range(4):
        out[j] = _lanes_total(a + j * BLOCK, BLOCK)


cdef inline void _gradient_data(const real *dy, const real *source, real *dx, Py_ssize_t n,
                                real m, real sx, real s, real g, real t2, real t3, real k,
                                bint global_stats) noexcept nogil:
    """One plane's ``dx = ((xn*t3 + t2) * k + dy*g) / s`` with ``xn = (source - m) / sx`` (or
    ``dx = dy*g / s`` with global statistics); g = 1, m = 0 and sx = 1 leave dy and source as
    they are, exactly. Branch-free inner loops, which the compiler vectorises."""
    cdef Py_ssize_t i
    cdef real xn
    if global_stats:
        for i in range(n):
            dx[i] = (dy[i] * g) / s
    else:
        for i in range(n):
            xn = (source[i] - m) / sx
            dx[i] = ((xn * t3 + t2) * k + dy[i] * g) / s


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
    if planes and inner < short_plane:
        for c in prange(channels, nogil=True, schedule='static'):
            total = _sum(&x[c * inner], planes // channels, channels * inner, inner)
            out[c] = out[c] + total if accumulate else total
        return
    cdef real[::1] partial = np.empty(planes, np.float32 if real is float else np.float64)
    for p in prange(planes, nogil=True, schedule='static'):
        partial[p] = _sum(&x[p * inner], 1, inner, inner)
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
    """Per-channel mean and biased variance of x as (outer, channels, inner): in one pass over
    memory plane by plane, or for short planes channel by channel in two passes over the
    channel's values (the mean, then the centred sum of squares around it, as Caffe; the second
    reads them from cache)."""
    cdef Py_ssize_t channels = mean.shape[0], count = x.shape[0], planes, p, c, o
    cdef double total, centred, spread, values
    _check('batch_norm_statistics', count, channels, inner, (('variance', variance.shape[0],
                                                              channels),))
    planes = count // inner if inner else 0
    cdef real centre
    if planes and inner < short_plane:
        values = <double>(planes // channels) * inner
        for c in prange(channels, nogil=True, schedule='static'):
            centre = <real>(_sum(&x[c * inner], planes // channels, channels * inner, inner) /
                            values)
            mean[c] = centre
            variance[c] = <real>(_centred_squares(&x[c * inner], planes // channels,
                                                  channels * inner, inner, centre) / values)
        return
    cdef double[::1] sums = np.empty(planes)
    cdef double[::1] squares = np.empty(planes)
    cdef double[::1] centres = np.empty(planes)
    for p in prange(planes, nogil=True, schedule='static'):
        centre = _sum(&x[p * inner], 1, inner, inner)
        sums[p] = centre
        centre = centre / <real>inner
        centres[p] = centre
        squares[p] = _centred_squares(&x[p * inner], 1, inner, inner, centre)
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
    cdef Py_ssize_t channels = mean.shape[0], count = top_diff.shape[0], planes, p, o, c
    cdef bint scaled = scale.shape[0] != 0, write_dy = scaled_diff.shape[0] != 0
    cdef bint data = bottom_diff.shape[0] != 0
    cdef real t0, t1, t2, t3, k
    _check('batch_norm_backward', count, channels, inner,
           (('source', source.shape[0], count), ('std', std.shape[0], channels),
            ('scale', scale.shape[0], channels if scaled else 0),
            ('scaled_diff', scaled_diff.shape[0], count if write_dy else 0),
            ('bottom_diff', bottom_diff.shape[0], count if data else 0),
            ('sums', sums.shape[0], 4 * channels)))
    planes = count // inner if inner else 0
    cdef real[:, ::1] partial = np.empty((planes, 4), np.float32 if real is float else np.float64)
    cdef real *dy_out
    cdef bint short = planes and inner < short_plane
    if short:
        # Channel by channel: partial's first ``channels`` rows hold the channels' sums.
        for c in prange(channels, nogil=True, schedule='static'):
            dy_out = &scaled_diff[c * inner] if write_dy else NULL
            _gradient_sums(&top_diff[c * inner], &source[c * inner], dy_out, planes // channels,
                           channels * inner, inner, mean[c] if recompute else 0,
                           std[c] if recompute else 1, scale[c] if scaled else 1, write_dy,
                           &partial[c, 0])
    else:
        for p in prange(planes, nogil=True, schedule='static'):
            c = p % channels
            dy_out = &scaled_diff[p * inner] if write_dy else NULL
            _gradient_sums(&top_diff[p * inner], &source[p * inner], dy_out, 1, inner, inner,
                           mean[c] if recompute else 0, std[c] if recompute else 1,
                           scale[c] if scaled else 1, write_dy, &partial[p, 0])
    for c in range(channels):
        t0 = 0
        t1 = 0
        t2 = 0
        t3 = 0
        for o in range(c, c + 1 if short else planes, channels):
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
    cdef const real *dy_in
    for p in prange(planes, nogil=True, schedule='static'):
        c = p % channels
        # dy: the one pass 1 wrote, or dz times the Scale's factor (1 without one: exact).
        dy_in = &scaled_diff[p * inner] if write_dy else &top_diff[p * inner]
        _gradient_data(dy_in, &source[p * inner], &bottom_diff[p * inner], inner,
                       mean[c] if recompute else 0, std[c] if recompute else 1, std[c],
                       scale[c] if scaled and not write_dy else 1, sums[2 * channels + c],
                       sums[3 * channels + c], k, global_stats)
