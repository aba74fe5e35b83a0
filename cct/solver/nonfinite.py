"""Finding where a loss stopped being finite: the first layer whose output holds NaN or inf.

The failing forward pass has already run, but in-place layers may have overwritten what an earlier
layer produced, so the layers that read bottoms run again, one at a time, each checked right after
its forward. Source layers (no bottoms) are not run again, so no data is consumed: their tops still
hold the batch that failed. Param blobs that are themselves not finite are named too, since that
is the usual cause (a diverged update).
"""
import numpy as np


def _non_finite(array):
    return not np.isfinite(array).all()


def non_finite_params(net):
    """``'layer' param i`` for every learnable (owner) param of ``net`` holding NaN or inf."""
    return ["'%s' param %d" % (net.layer_names[layer_id], param_id)
            for (layer_id, param_id), owner in zip(net.param_layer_indices, net.param_owners)
            if owner == -1 and _non_finite(net.layers[layer_id].blobs[param_id].data)]


def describe_non_finite(net):
    """A sentence naming the first layer of ``net`` whose top is not finite (and its bad params)."""
    for layer_id, layer in enumerate(net.layers):
        bottoms, tops = net.bottom_vecs[layer_id], net.top_vecs[layer_id]
        if bottoms:
            layer.run_forward(bottoms, tops)
        for top_id, blob in enumerate(tops):
            if _non_finite(blob.data):
                bad_params = [str(i) for i, param in enumerate(layer.blobs)
                              if _non_finite(param.data)]
                detail = '; its param blob(s) %s are not finite' % ', '.join(bad_params) \
                    if bad_params else ''
                return ("The first layer whose output is not finite: '%s' (type %s), top '%s'%s."
                        % (layer.name, layer.type, net.blob_names[net.top_ids[layer_id][top_id]],
                           detail))
    return ('Every layer output is finite when the pass is repeated, so the loss itself overflowed '
            'or a layer is not deterministic.')
