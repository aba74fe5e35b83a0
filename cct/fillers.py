"""Weight fillers (Caffe's filler.hpp): constant, uniform, gaussian (with sparse), positive_unitball,
xavier, msra and bilinear, each drawing from Caffe's distribution.

An omitted filler is ``constant`` 0 (FillerParameter's defaults); layers pass their own default
(Scale 1, PReLU 0.25) when their prototxt has none.
"""
import numpy as np

from cct import rng
from cct.errors import NetError
from cct.proto import caffe_pb2

_VarianceNorm = caffe_pb2.FillerParameter


def _fans(shape):
    count = int(np.prod(shape))
    fan_in = count // shape[0]
    fan_out = count // shape[1] if len(shape) > 1 else count
    return fan_in, fan_out


def _scale_n(filler, shape):
    fan_in, fan_out = _fans(shape)
    if filler.variance_norm == _VarianceNorm.AVERAGE:
        return (fan_in + fan_out) / 2.0
    if filler.variance_norm == _VarianceNorm.FAN_OUT:
        return fan_out
    return fan_in


def fill(blob, filler, where='filler'):
    """Fill ``blob.data`` in place as ``filler`` (a FillerParameter) says.

    Args:
        blob: the Blob to fill.
        filler: a ``caffe_pb2.FillerParameter``.
        where: names the layer and blob in error messages.
    """
    kind = filler.type
    shape = blob.shape
    data = blob.data
    gen = rng.generator()
    if filler.sparse != -1 and kind != 'gaussian':
        raise NetError('%s: sparsity is only supported by the gaussian filler, not %r' % (where, kind))
    if kind == 'constant':
        data[...] = filler.value
    elif kind == 'uniform':
        if filler.min > filler.max:
            raise NetError('%s: uniform filler min %g must not exceed max %g'
                           % (where, filler.min, filler.max))
        data[...] = gen.uniform(filler.min, filler.max, shape)
    elif kind == 'gaussian':
        # Caffe's caffe_rng_gaussian and caffe_rng_bernoulli check these and abort.
        if not filler.std > 0:
            raise NetError('%s: gaussian filler std must be positive, got %g' % (where, filler.std))
        if filler.sparse < -1:
            raise NetError('%s: gaussian filler sparse must be -1 (dense) or at least 0, got %d'
                           % (where, filler.sparse))
        data[...] = gen.normal(filler.mean, filler.std, shape)
        if filler.sparse >= 0:
            if not shape:
                raise NetError('%s: a sparse gaussian filler needs at least one axis' % where)
            keep = filler.sparse / shape[0]
            if keep > 1:
                raise NetError('%s: gaussian filler sparse %d exceeds the %d outputs (shape(0)) '
                               'it is a mean count of' % (where, filler.sparse, shape[0]))
            data *= gen.random(shape) < keep
    elif kind == 'positive_unitball':
        rows = data.reshape(shape[0], -1)
        rows[...] = gen.uniform(0, 1, rows.shape)
        rows /= rows.sum(axis=1, keepdims=True)
    elif kind == 'xavier':
        limit = np.sqrt(3.0 / _scale_n(filler, shape))
        data[...] = gen.uniform(-limit, limit, shape)
    elif kind == 'msra':
        data[...] = gen.normal(0.0, np.sqrt(2.0 / _scale_n(filler, shape)), shape)
    elif kind == 'bilinear':
        if len(shape) != 4 or shape[2] != shape[3]:
            raise NetError('%s: the bilinear filler needs a 4-D blob with square kernels, got %s'
                           % (where, shape))
        size = shape[3]
        f = np.ceil(size / 2.0)
        c = (size - 1) / (2.0 * f)
        ramp = 1 - np.abs(np.arange(size) / f - c)
        data[...] = np.outer(ramp, ramp)
    else:
        raise NetError("%s: unknown filler type '%s' (known: constant, uniform, gaussian, "
                       'positive_unitball, xavier, msra, bilinear)' % (where, kind))
