"""Layers a net runs as one: BatchNorm followed by a Scale in place on its top (ResNet's and
MobileNet's BatchNorm, Scale, ReLU chains), found when the net is built, and what each BatchNorm may
recompute for its backward instead of keeping it.

A pair runs fused only when both layers run in one forward_from_to (or backward_from_to) and no
callback watches the layers one by one (the solver's debug_info, a script's hooks): then nothing can
read the BatchNorm's top between the two, and what the blobs hold afterwards is what Caffe's hold.
A pair is not fused when the BatchNorm's top is read by anything but the Scale (the net then has a
Split between them), when the Scale is not in place or takes its scale from a bottom, or when either
top is a loss.
"""


def plan(net):
    """Set each BatchNorm's ``recompute`` (its bottom stays intact until backward) and
    ``backward_runs`` (a backward will read x_norm: not in a net that never runs it, such as a
    deploy net), and pair it with the Scale it fuses with; return {BatchNorm index: Scale
    index}."""
    pairs = {}
    layers = net.layers
    for i, layer in enumerate(layers):
        if layer.type != 'BatchNorm':
            continue
        bottom_id, top_id = net.bottom_ids[i][0], net.top_ids[i][0]
        bottom = net.blobs_list[bottom_id]
        # Nothing after it writes the bottom (or a blob sharing its data, as Split's tops do).
        layer.recompute = bottom_id != top_id and not any(
            t == bottom_id or net.blobs_list[t].shares_data_with(bottom)
            for j in range(i + 1, len(layers)) for t in net.top_ids[j])
        layer.backward_runs = net.layer_need_backward[i]
        j = i + 1
        if j < len(layers) and _fusable(net, i, j):
            pairs[i] = j
            layer.scale_layer = layers[j]
            layers[j].batch_norm = layer
            # The fused Scale's gradient needs x_norm too.
            layer.backward_runs = layer.backward_runs or net.layer_need_backward[j]
    return pairs


def _fusable(net, i, j):
    batch_norm, scale = net.layers[i], net.layers[j]
    top_id = net.top_ids[i][0]
    if scale.type != 'Scale' or len(net.bottom_ids[j]) != 1 or len(net.top_ids[j]) != 1:
        return False
    if net.bottom_ids[j][0] != top_id or net.top_ids[j][0] != top_id:
        return False
    blob = net.blobs_list[top_id]
    if blob.ndim < 2 or scale.blobs[0].shape != (batch_norm.channels,):
        return False
    if blob.canonical_axis(scale.param.scale_param.axis) != 1:
        return False
    return not batch_norm.loss(0) and not scale.loss(0)


def forward(net, i, j):
    """Run BatchNorm ``i`` and its Scale ``j`` forward as one (neither has a loss)."""
    batch_norm, scale = net.layers[i], net.layers[j]
    batch_norm.reshape(net.bottom_vecs[i], net.top_vecs[i])
    scale.reshape(net.bottom_vecs[j], net.top_vecs[j])
    batch_norm.forward_fused(net.bottom_vecs[i], net.top_vecs[i], net.top_vecs[j])


def backward_ready(net, i, j):
    """Whether BatchNorm ``i`` and Scale ``j`` can run backward as one now: the Scale runs
    backward, its forward ran fused, and the Scale hands BatchNorm its gradient where BatchNorm
    needs one."""
    if not net.layer_need_backward[j] or not net.layers[i].fused:
        return False
    return net.bottom_need_backward[j][0] or not net.layer_need_backward[i]


def backward(net, i, j):
    """Run Scale ``j`` and BatchNorm ``i`` backward as one (after ``backward_ready``)."""
    propagate = [net.layer_need_backward[i] and net.bottom_need_backward[i][0]]
    net.layers[i].backward_fused(net.top_vecs[i], propagate, net.bottom_vecs[i],
                                 net.top_vecs[j], net.bottom_need_backward[j])
