# The depthwise weight gradient, included by depthwise.pyx (whose Plane, padded planes and checks it
# uses): per tap, running sums of the top's values times what the tap read, kept in LANES lanes.

# Images per flat pass of the weight gradient: small planes (MobileNet's 7x7 and 14x14) are stacked
# one under the other, up to this many values (two L1-sized buffers of them with the tops: more
# measured no faster), so that each tap is one long pass, not one per image.
DEF STACK_VALUES = 4096


cdef struct Stack:
    Py_ssize_t images    # planes per pass (1 unless flat)
    Py_ssize_t block     # rows per stacked plane: padded_h rounded up to a multiple of the stride


cdef Stack _stack(const Plane *g) noexcept nogil:
    cdef Stack st
    st.images, st.block = 1, g.padded_h
    if _flat_weights(g):
        st.block = (g.padded_h + g.stride_h - 1) // g.stride_h * g.stride_h
        st.images = max(1, STACK_VALUES // (st.block * g.padded_w))
    return st


cdef void _weight_lanes(const real *padded, const real *dy, Py_ssize_t dy_stride,
                        Py_ssize_t images, real *lanes, real *bias_lanes, bint want_weights,
                        const Plane *g, const Stack *st, real *pitched,
                        real *columns) noexcept nogil:
    """For ``images`` (image, output channel) planes (the tops at dy + b*dy_stride, the padded
    inputs stacked in ``padded`` every st.block rows): lanes[tap*LANES + l] += the products of
    the tops with what the tap read, the product at flat position q going to lane q % LANES;
    bias_lanes likewise += the tops (unless NULL). With equal strides the tops are first laid
    out at the padded pitch in ``pitched`` (block/stride rows each; the other values kept 0), so
    a tap is one flat pass over all the images (strides above 1: where rows are short);
    otherwise (one image) a pass per output row."""
    cdef Py_ssize_t b, oh, ow, i, j, count, sw = g.stride_w, pitch = g.padded_w
    cdef Py_ssize_t rows = st.block // g.stride_h
    cdef const real *row
    cdef const real *src
    cdef real *acc
    if bias_lanes != NULL:
        for b in range(images):
            _dot_lanes(dy + b * dy_stride, NULL, g.out_h * g.out_w, 1, bias_lanes)
    if not want_weights:
        return
    if _flat_weights(g):
        # Output row oh of image b reads from stacked row b*block + oh*stride: at the padded
        # pitch, flat position q of the pitched tops reads stacked position q*stride + the tap's
        # offset. With a stride of 2 about half the positions are the pitch's zero columns:
        # still faster than a pass per row where rows are too short to fill the lanes twice
        # (measured: 14x14 planes 1.3x faster, 112x112 ones slower). The zeros multiply input
        # values too: an infinite input gives NaN where Caffe's sum might have been infinite
        # (the net has diverged either way).
        for b in range(images):
            for oh in range(g.out_h):
                for ow in range(g.out_w):
                    pitched[(b * rows + oh) * pitch + ow] = dy[b * dy_stride + oh * g.out_w + ow]
        count = ((images - 1) * rows + g.out_h - 1) * pitch + g.out_w
        # 3x3: all nine taps in one pass where the plane is long enough to pay for loading
        # and storing 9 sets of lanes (measured: 112x112 1.5x faster, 7x7 1.3x slower).
        if g.kernel_h == 3 and g.kernel_w == 3 and sw == 1 and count >= 16 * LANES:
            _dot_lanes3x3(pitched, padded, pitch * g.dilation_h, g.dilation_w, count, lanes)
            return
        for i in range(g.kernel_h):
            for j in range(g.kernel_w):
                _dot_lanes(pitched, padded + i * g.dilation_h * pitch + j * g.dilation_w, count,
                           sw, lanes + (i * g.kernel_w + j) * LANES)
        return
    # Rows long enough for vectors: running sums per output column and tap (``columns``,
    # folded into the lanes by ``_fold_columns``), one contiguous pass per row and tap.
    for oh in range(g.out_h):
        row = dy + oh * g.out_w
        for i in range(g.kernel_h):
            for j in range(g.kernel_w):
                acc = columns + (i * g.kernel_w + j) * g.out_w
                src = padded + (oh * g.stride_h + i * g.dilation_h) * g.padded_w + \
                    j * g.dilation_w
                if sw == 2:
                    for ow in range(g.out_w):
                        acc[ow] = acc[ow] + row[ow] * src[2 * ow]
                else:
                    for ow in range(g.out_w):
                        acc[ow] = acc[ow] + row[ow] * src[ow * sw]


cdef bint _flat_weights(const Plane *g) noexcept nogil:
    """Whether ``_weight_lanes`` takes flat passes (else per-row passes into ``columns``)."""
    return g.stride_h == g.stride_w and (g.stride_w == 1 or g.out_w < 2 * LANES)


cdef void _fold_columns(real *columns, real *lanes, const Plane *g) noexcept nogil:
    """lanes of each tap += its per-column sums."""
    cdef Py_ssize_t tap
    for tap in range(g.kernel_h * g.kernel_w):
        _dot_lanes(columns + tap * g.out_w, NULL, g.out_w, 1, lanes + tap * LANES)


cdef void _dot_lanes3x3(const real *a, const real *b, Py_ssize_t row, Py_ssize_t d,
                        Py_ssize_t count, real *lanes) noexcept nogil:
    """``_dot_lanes`` for the nine taps of a 3x3 kernel at once (tap (i, j) reads b + i*row +
    j*d): each value of a is read once for all nine, the lanes are the same."""
    cdef real local[9 * LANES]
    cdef real av
    cdef Py_ssize_t q, l, body = count - count % LANES
    cdef const real *b1 = b + row
    cdef const real *b2 = b + 2 * row
    for l in range(9 * LANES):
        local[l] = lanes[l]
    for q in range(0, body, LANES):
        for l in range(LANES):
            av = a[q + l]
            local[l] = local[l] + av * b[q + l]
            local[LANES + l] = local[LANES + l] + av * b[q + l + d]
            local[2 * LANES + l] = local[2 * LANES + l] + av * b[q + l + 2 * d]
            local[3 * LANES + l] = local[3 * LANES + l] + av * b1[q + l]
            local[4 * LANES + l] = local[4 * LANES + l] + av * b1[q + l + d]
            local[5 * LANES + l] = local[5 * LANES + l] + av * b1[q + l + 2 * d]
            local[6 * LANES + l] = local[6 * LANES + l] + av * b2[q + l]
            local[7 * LANES + l] = local[7 * LANES + l] + av * b2[q + l + d]
            local[8 * LANES + l] = local[8 * LANES + l] + av * b2[q + l + 2 * d]
    for l in range(9 * LANES):
        lanes[l] = local[l]
    for l in range(9):
        _dot_lanes(a + body, b + (l // 3) * row + (l % 3) * d + body, count - body, 1,
                   lanes + l * LANES)


cdef inline void _dot_lanes(const real *a, const real *b, Py_ssize_t count, Py_ssize_t stride,
                            real *lanes) noexcept nogil:
    """lanes[q % LANES] += a[q] * b[q*stride] (or a[q] where b is NULL) for q < count: running
    sums the compiler keeps in vector registers (a local copy: ``lanes`` might alias a or b for
    all it knows), since one serial chain of adds is latency bound."""
    cdef real local[LANES]
    cdef Py_ssize_t q, l, body = count - count % LANES
    for l in range(LANES):
        local[l] = lanes[l]
    if b == NULL:
        for q in range(0, body, LANES):
            for l in range(LANES):
                local[l] = local[l] + a[q + l]
        for q in range(body, count):
            local[q - body] = local[q - body] + a[q]
    elif stride == 1:
        for q in range(0, body, LANES):
            for l in range(LANES):
                local[l] = local[l] + a[q + l] * b[q + l]
        for q in range(body, count):
            local[q - body] = local[q - body] + a[q] * b[q]
    else:
        for q in range(0, body, LANES):
            for l in range(LANES):
                local[l] = local[l] + a[q + l] * b[(q + l) * stride]
        for q in range(body, count):
            local[q - body] = local[q - body] + a[q] * b[q * stride]
    for l in range(LANES):
        lanes[l] = local[l]


cdef inline real _row_sum(const real *values, Py_ssize_t count) noexcept nogil:
    cdef real total = 0
    cdef Py_ssize_t q
    for q in range(count):
        total = total + values[q]
    return total


# ------------------------------------------------------------------------ layer-level operation
def depthwise_weight_grad(const real[:, :, :, ::1] images, const real[:, :, ::1] rows,
                          real[:, ::1] weight_diff, real[::1] bias_diff, bint want_weights,
                          tuple geometry, real[:, ::1] scratch):
    """``weight_diff[c*k + m] += sum_n rows[n, c*k + m] correlated with images[n, c]`` (Caffe's
    weight_cpu_gemm for group == channels) when ``want_weights``, and ``bias_diff += the sum of
    rows per channel`` unless it is empty. Each output channel is summed by one thread in LANES
    running sums per tap (in its scratch row after the padded plane and the pitched top), then
    across them, so the result does not depend on the thread count. Other arguments as for
    ``depthwise_forward``."""
    cdef Py_ssize_t num = images.shape[0], channels = images.shape[1]
    cdef Plane g = _plane(geometry, images.shape[2], images.shape[3])
    cdef Py_ssize_t outputs = weight_diff.shape[0], taps = weight_diff.shape[1], k, o, n, q
    cdef Stack st = _stack(&g)
    cdef Py_ssize_t stacked = st.images * st.block * g.padded_w, width = (taps + 1) * LANES
    cdef Py_ssize_t pitched = st.images * (st.block // g.stride_h) * g.padded_w, b, count
    cdef bint want_bias = bias_diff.shape[0] > 0
    cdef real *acc
    cdef real *plane
    _check('depthwise_weight_grad', num, channels, outputs, taps, rows.shape[0], rows.shape[1],
           rows.shape[2], &g, scratch)
    if want_bias and bias_diff.shape[0] != outputs:
        raise ValueError('depthwise_weight_grad: bias_diff has %d values for %d outputs'
                         % (bias_diff.shape[0], outputs))
    if not (want_weights or want_bias):
        return
    k = outputs // channels
    # The padded planes' borders and the pitched tops' other values stay 0.
    _zero_rows(scratch, stacked + pitched)
    for o in prange(outputs, nogil=True, schedule='dynamic'):
        plane = &scratch[omp_get_thread_num(), 0]
        acc = plane + stacked + pitched
        memset(acc, 0, (width + taps * g.out_w) * sizeof(real))
        n = 0
        while n < num:
            count = min(st.images, num - n)
            if want_weights:
                for b in range(count):
                    _pad_plane(&images[n + b, o // k, 0, 0], &g,
                               plane + b * st.block * g.padded_w)
            _weight_lanes(plane, &rows[n, o, 0], outputs * g.out_h * g.out_w, count, acc,
                          acc + taps * LANES if want_bias else NULL, want_weights, &g, &st,
                          plane + stacked, acc + width)
            n = n + count
        if want_weights and not _flat_weights(&g):
            _fold_columns(acc + width, acc, &g)
        if want_weights:
            for q in range(taps):
                weight_diff[o, q] += _row_sum(acc + q * LANES, LANES)
        if want_bias:
            bias_diff[o] += _row_sum(acc + taps * LANES, LANES)
