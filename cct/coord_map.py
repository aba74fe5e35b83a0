"""Spatial coordinate mappings between NetSpec tops, for aligning feature maps with Crop layers
(pycaffe's python/caffe/coord_map.py, as used by FCN nets).

A mapping is (axis, scale a, shift b): output coordinate ``a * x + b`` <- input coordinate ``x``, per
spatial axis after ``axis``. Convolution/Pooling/Im2col map by (1/stride, (pad - (k_eff - 1)/2) /
stride) with k_eff = (k - 1) * dilation + 1; Deconvolution by (stride, (k_eff - 1)/2 - pad);
pointwise layers are the identity (None, 1, 0); Crop shifts by -offset. ``crop(from, to)`` builds the
Crop layer that aligns ``from`` onto ``to``: it needs scale 1 and a non-positive integer shift.
Legacy ``kernel_h``/``pad_w``-style parameters are not supported, as in pycaffe.
"""
import numpy as np

from cct.net_spec import layers as L

PASS_THROUGH_LAYERS = ['AbsVal', 'BatchNorm', 'Bias', 'BNLL', 'Dropout', 'Eltwise', 'ELU', 'Log',
                       'LRN', 'Exp', 'MVN', 'Power', 'ReLU', 'PReLU', 'Scale', 'Sigmoid', 'Split',
                       'TanH', 'Threshold']


class UndefinedMapException(RuntimeError):
    """A layer on the path has no defined coordinate mapping (e.g. InnerProduct)."""


class AxisMismatchException(ValueError):
    """Two composed mappings act on different axes."""


class CropMismatchError(AssertionError, ValueError):
    """The mapping cannot be realised by a Crop (pycaffe asserts, hence AssertionError)."""


def conv_params(fn):
    """(axis, stride, effective kernel size, pad) of a Convolution/Deconvolution/Im2col/Pooling
    Function, as arrays (one entry, or one per spatial axis)."""
    params = fn.params.get('convolution_param', fn.params)
    legacy = {'pad_h', 'pad_w', 'kernel_h', 'kernel_w', 'stride_h', 'stride_w'} & set(params)
    if legacy:
        raise ValueError('cropping does not support legacy _h/_w params (layer %s uses %s)'
                         % (fn.type_name, ', '.join(sorted(legacy))))
    axis = params.get('axis', 1)
    kernel_size = np.array(params['kernel_size'], ndmin=1)
    dilation = np.array(params.get('dilation', 1), ndmin=1)
    return (axis, np.array(params.get('stride', 1), ndmin=1), (kernel_size - 1) * dilation + 1,
            np.array(params.get('pad', 0), ndmin=1))


def crop_params(fn):
    """(axis, offset) of a Crop Function, with Caffe's defaults (axis 2, offset 0)."""
    params = fn.params.get('crop_param', fn.params)
    return params.get('axis', 2), np.array(params.get('offset', 0), ndmin=1)


def coord_map(fn):
    """The (axis, scale, shift) mapping of one layer Function."""
    if fn.type_name in ('Convolution', 'Pooling', 'Im2col'):
        axis, stride, kernel_size, pad = conv_params(fn)
        return axis, 1 / stride, (pad - (kernel_size - 1) / 2) / stride
    if fn.type_name == 'Deconvolution':
        axis, stride, kernel_size, pad = conv_params(fn)
        return axis, stride, (kernel_size - 1) / 2 - pad
    if fn.type_name in PASS_THROUGH_LAYERS:
        return None, 1, 0
    if fn.type_name == 'Crop':
        axis, offset = crop_params(fn)
        # The mapping's axis is the last non-spatial one; Crop's axis is the first cropped one.
        return axis - 1, 1, -offset
    raise UndefinedMapException('%s layers have no coordinate mapping' % fn.type_name)


def compose(base_map, next_map):
    """Apply ``next_map`` after ``base_map``: scales multiply, the further shift is scaled."""
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is None:
        ax = ax2
    elif ax2 is None or ax1 == ax2:
        ax = ax1
    else:
        raise AxisMismatchException('cannot compose coordinate maps on axes %s and %s'
                                    % (ax1, ax2))
    return ax, a1 * a2, a1 * b2 + b1


def inverse(mapping):
    """The inverse mapping (output back to input coordinates)."""
    ax, a, b = mapping
    return ax, 1 / a, -b / a


def _bottoms(top):
    # Only Crop's first bottom is mapped; its second just gives the target size.
    return top.fn.inputs[:1] if top.fn.type_name == 'Crop' else top.fn.inputs


def coord_map_from_to(top_from, top_to):
    """The mapping from ``top_from``'s coordinates to ``top_to``'s, through their nearest common
    ancestor top."""
    from_maps = {top_from: (None, 1, 0)}
    frontier = {top_from}
    blocked = None
    while frontier:
        top = frontier.pop()
        try:
            for bottom in _bottoms(top):
                from_maps[bottom] = compose(from_maps[top], coord_map(top.fn))
                frontier.add(bottom)
        except UndefinedMapException as e:
            if top.fn.inputs and blocked is None:
                blocked = e
    to_maps = {top_to: (None, 1, 0)}
    frontier = {top_to}
    while frontier:
        top = frontier.pop()
        if top in from_maps:
            return compose(to_maps[top], inverse(from_maps[top]))
        try:
            for bottom in _bottoms(top):
                to_maps[bottom] = compose(to_maps[top], coord_map(top.fn))
                frontier.add(bottom)
        except UndefinedMapException:
            continue
    if blocked is not None:
        raise UndefinedMapException('Could not compute map between tops: %s' % blocked)
    raise RuntimeError('Could not compute map between tops; are they connected by spatial '
                       'layers?')


def crop(top_from, top_to):
    """A Crop layer (NetSpec top) cropping ``top_from`` to align with ``top_to``."""
    ax, a, b = coord_map_from_to(top_from, top_to)
    a, b = np.asarray(a), np.asarray(b)
    if not (a == 1).all():
        raise CropMismatchError('scale mismatch on crop (a = {})'.format(a))
    if not (b <= 0).all():
        raise CropMismatchError('cannot crop negative offset (b = {})'.format(b))
    if not (np.round(b) == b).all():
        raise CropMismatchError('cannot crop noninteger offset (b = {})'.format(b))
    return L.Crop(top_from, top_to,
                  crop_param=dict(axis=ax + 1,
                                  offset=[int(v) for v in -np.round(b).astype(int)]))
