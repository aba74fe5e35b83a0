"""Shape arithmetic shared by layers, net and tests, with Caffe's rounding rules, and the one place
where Caffe's several spellings of kernel/stride/pad/dilation are normalised."""
from collections import namedtuple

from cct.errors import NetError
from cct.proto import caffe_pb2

ConvGeometry = namedtuple('ConvGeometry', 'kernel stride pad dilation')
PoolGeometry = namedtuple('PoolGeometry', 'kernel_h kernel_w stride_h stride_w pad_h pad_w')

# Caffe keeps every geometry value and plane size in a C int, and so do cct's kernels: a value, or a
# window's reach over the padded plane, beyond this is refused when the net is built.
INT_MAX = 2 ** 31 - 1


def conv_out_size(size, kernel, stride=1, pad=0, dilation=1):
    """Convolution output length: floor((size + 2*pad - extent) / stride) + 1."""
    extent = dilation * (kernel - 1) + 1
    return (size + 2 * pad - extent) // stride + 1


def deconv_out_size(size, kernel, stride=1, pad=0, dilation=1):
    """Deconvolution output length: stride*(size - 1) + extent - 2*pad."""
    extent = dilation * (kernel - 1) + 1
    return stride * (size - 1) + extent - 2 * pad


def pool_out_size(size, kernel, stride=1, pad=0, ceil_mode=True):
    """Pooling output length with Caffe's rounding (CEIL by default) and last-window clipping.

    With padding, a last window that would start at or beyond ``size + pad`` (entirely in the padding)
    is dropped, so every window overlaps the image.
    """
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _per_axis(values, count, default, what, layer):
    values = list(values)
    if not values:
        return [default] * count
    if len(values) == 1:
        return values * count
    if len(values) != count:
        raise NetError('%s: %s must be specified once, or once per spatial dimension '
                       '(%s specified %d times; %d spatial dims)'
                       % (layer, what, what, len(values), count))
    return values


def conv_geometry(conv_param, num_spatial_axes, layer='layer'):
    """Kernel, stride, pad and dilation per spatial axis from a ConvolutionParameter.

    ``kernel_h/kernel_w`` (and the stride/pad forms) are 2-D only and exclude the repeated forms, as
    in Caffe's BaseConvolutionLayer::LayerSetUp.
    """
    def hw_or_repeated(name, default):
        has_hw = conv_param.HasField(name + '_h') or conv_param.HasField(name + '_w')
        repeated = getattr(conv_param, name + ('_size' if name == 'kernel' else ''))
        if has_hw:
            if num_spatial_axes != 2:
                raise NetError('%s: %s_h & %s_w can only be used for 2D convolution'
                               % (layer, name, name))
            if len(repeated):
                raise NetError('%s: either %s%s or %s_h/w should be specified; not both'
                               % (layer, name, '_size' if name == 'kernel' else '', name))
            return [getattr(conv_param, name + '_h'), getattr(conv_param, name + '_w')]
        return _per_axis(repeated, num_spatial_axes, default,
                         name + ('_size' if name == 'kernel' else ''), layer)

    kernel = hw_or_repeated('kernel', None)
    if kernel[0] is None:
        raise NetError('%s: kernel_size (or kernel_h and kernel_w) is required' % layer)
    if any(k <= 0 for k in kernel):
        raise NetError('%s: filter dimensions must be nonzero, got kernel %s' % (layer, kernel))
    stride = hw_or_repeated('stride', 1)
    if any(s <= 0 for s in stride):
        raise NetError('%s: stride dimensions must be nonzero, got %s' % (layer, stride))
    pad = hw_or_repeated('pad', 0)
    dilation = _per_axis(conv_param.dilation, num_spatial_axes, 1, 'dilation', layer)
    if any(d <= 0 for d in dilation):
        raise NetError('%s: dilation must be positive, got %s' % (layer, dilation))
    check_int_fields(layer, (('kernel_size', kernel), ('stride', stride), ('pad', pad),
                             ('dilation', dilation)))
    for k, d in zip(kernel, dilation):
        if d * (k - 1) + 1 > INT_MAX:
            raise NetError('%s: the dilated kernel (kernel_size %d, dilation %d) spans %d pixels, '
                           'more than a C int holds (%d)' % (layer, k, d, d * (k - 1) + 1,
                                                             INT_MAX))
    return ConvGeometry(tuple(kernel), tuple(stride), tuple(pad), tuple(dilation))


def check_int_fields(layer, fields):
    """Refuse any value of the ``(field name, values)`` pairs that a C int cannot hold."""
    for name, values in fields:
        for value in values:
            if value > INT_MAX:
                raise NetError('%s: %s %d is out of range (at most %d, a C int as in Caffe)'
                               % (layer, name, value, INT_MAX))


def check_window_reach(layer, axis, size, kernel, stride, pad, dilation=1):
    """Refuse a sliding window whose arithmetic over a plane of ``size`` would leave a C int.

    ``axis`` names the spatial axis ('height' or 'width') in the message. With the values each
    within a C int, every index the kernels form lies in [-pad, size + 2*pad + extent + stride),
    so bounding that keeps the kernels' int arithmetic exact.
    """
    extent = dilation * (kernel - 1) + 1
    reach = size + 2 * pad + extent + stride
    if reach > INT_MAX:
        raise NetError('%s: the input %s (%d) with pad %d, a window of %d and stride %d reaches '
                       '%d, beyond a C int (%d)' % (layer, axis, size, pad, extent, stride, reach,
                                                   INT_MAX))


def pool_geometry(pool_param, height, width, layer='layer'):
    """Kernel, stride and pad of a PoolingParameter, checked as Caffe's PoolingLayer::LayerSetUp."""
    p = pool_param
    has_hw = p.HasField('kernel_h') and p.HasField('kernel_w')
    if p.global_pooling:
        if p.HasField('kernel_size') or p.HasField('kernel_h') or p.HasField('kernel_w'):
            raise NetError('%s: with global_pooling: true filter size cannot be specified' % layer)
        kernel_h, kernel_w = height, width
    else:
        if p.HasField('kernel_size') == has_hw:
            raise NetError('%s: filter size is kernel_size OR kernel_h and kernel_w; not both'
                           % layer if has_hw else
                           '%s: pooling needs kernel_size, or both kernel_h and kernel_w' % layer)
        kernel_h, kernel_w = ((p.kernel_h, p.kernel_w) if has_hw else (p.kernel_size,) * 2)
    if kernel_h <= 0 or kernel_w <= 0:
        raise NetError('%s: filter dimensions cannot be zero' % layer)

    def pair(name):
        has_h, has_w = p.HasField(name + '_h'), p.HasField(name + '_w')
        if (has_h or has_w) and (p.HasField(name) or not (has_h and has_w)):
            raise NetError('%s: %s is %s OR %s_h and %s_w are required' % (layer, name, name, name, name))
        if has_h:
            return getattr(p, name + '_h'), getattr(p, name + '_w')
        return (getattr(p, name),) * 2

    pad_h, pad_w = pair('pad')
    stride_h, stride_w = pair('stride')
    if stride_h <= 0 or stride_w <= 0:
        raise NetError('%s: stride must be positive, got stride_h %d, stride_w %d'
                       % (layer, stride_h, stride_w))
    check_int_fields(layer, (('kernel_size', (kernel_h, kernel_w)),
                             ('stride', (stride_h, stride_w)), ('pad', (pad_h, pad_w))))
    if p.global_pooling and (pad_h or pad_w or stride_h != 1 or stride_w != 1):
        raise NetError('%s: with global_pooling: true only pad = 0 and stride = 1' % layer)
    if pad_h or pad_w:
        if p.pool not in (caffe_pb2.PoolingParameter.MAX, caffe_pb2.PoolingParameter.AVE):
            raise NetError('%s: padding implemented only for average and max pooling' % layer)
        if pad_h >= kernel_h or pad_w >= kernel_w:
            raise NetError('%s: pad (%d, %d) must be smaller than the kernel (%d, %d)'
                           % (layer, pad_h, pad_w, kernel_h, kernel_w))
    return PoolGeometry(kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w)

