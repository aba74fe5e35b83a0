"""The layers a hybrid split cannot run on shares: those that mix the items of a batch (along
axis 0) other than through whole-batch sums (Layer.whole_batch_sum), refused by name when the
hybrid net is built rather than computed per share.
"""
from cct.errors import NetError

# type -> (parameter message, its axis field, the default axis)
_AXIS_FIELDS = {
    'Concat': ('concat_param', 'axis', 1),
    'Slice': ('slice_param', 'axis', 1),
    'Tile': ('tile_param', 'axis', 1),
    'Reduction': ('reduction_param', 'axis', 0),
    'Softmax': ('softmax_param', 'axis', 1),
    'SoftmaxWithLoss': ('softmax_param', 'axis', 1),
    'InfogainLoss': ('infogain_loss_param', 'axis', 1),
    'Accuracy': ('accuracy_param', 'axis', 1),
    'Flatten': ('flatten_param', 'axis', 1),
    'InnerProduct': ('inner_product_param', 'axis', 1),
    'Crop': ('crop_param', 'axis', 2),
    'Scale': ('scale_param', 'axis', 1),
    'Bias': ('bias_param', 'axis', 1),
    'ArgMax': ('argmax_param', 'axis', None),
}
# The legacy names of Concat's and Slice's axis.
_LEGACY_AXIS = {'Concat': ('concat_param', 'concat_dim'), 'Slice': ('slice_param', 'slice_dim')}

_REFUSED = {
    'BatchReindex': 'it reorders the items of the whole batch',
    'Filter': 'it selects items of the whole batch',
    'HDF5Output': 'it would write each share as a batch of its own',
    'Python': 'cct cannot tell whether its computation mixes the items of the batch',
}


def _axis(layer, ndim):
    spec = _AXIS_FIELDS.get(layer.type)
    if spec is None:
        return None
    message, field, default = spec
    param = getattr(layer.param, message)
    if layer.type in _LEGACY_AXIS and not param.HasField('axis') and \
            param.HasField(_LEGACY_AXIS[layer.type][1]):
        return getattr(param, _LEGACY_AXIS[layer.type][1])
    axis = getattr(param, field) if param.HasField(field) else default
    if axis is None:
        return None
    return axis + ndim if axis < 0 else axis


def refuse_batch_mixing(net):
    """Raise NetError naming the first layer of ``net`` (a replica) that works across the batch."""
    for layer_id, layer in enumerate(net.layers):
        bottoms = net.bottom_vecs[layer_id]
        reason = _REFUSED.get(layer.type)
        ndim = bottoms[0].ndim if bottoms else 0
        if reason is None and _axis(layer, ndim) == 0:
            reason = 'it works along axis 0, the batch'
        if reason is None and layer.type == 'Reshape':
            p = layer.param.reshape_param
            start = p.axis if p.axis >= 0 else ndim + p.axis + 1
            if start == 0 and len(p.shape.dim) and p.shape.dim[0] > 0:
                reason = 'its shape fixes axis 0, the batch, to %d' % p.shape.dim[0]
        if reason is not None:
            raise NetError('%s cannot run with the batch split across devices: %s'
                           % (layer.where(), reason))
