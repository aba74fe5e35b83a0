"""Pure graph logic of a net: NetState filtering (Caffe's Net::FilterNet and StateMeetsRule) and
automatic Split insertion (Caffe's util/insert_splits.cpp) before it is built, and the planning of
which Split tops can share diff memory once it is."""
from cct.errors import NetError
from cct.proto import caffe_pb2


def state_meets_rule(state, rule):
    """A rule is met when phase, level bounds, all ``stage``s and no ``not_stage`` match the state."""
    if rule.HasField('phase') and rule.phase != state.phase:
        return False
    if rule.HasField('min_level') and state.level < rule.min_level:
        return False
    if rule.HasField('max_level') and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(stage not in stages for stage in rule.stage):
        return False
    return not any(stage in stages for stage in rule.not_stage)


def layer_included(layer, state):
    """No rules: included. Include rules: included if any is met. Exclude rules: excluded if any is."""
    if len(layer.include) and len(layer.exclude):
        raise NetError("Layer '%s': specify either include rules or exclude rules; not both"
                       % layer.name)
    if len(layer.include):
        return any(state_meets_rule(state, rule) for rule in layer.include)
    return not any(state_meets_rule(state, rule) for rule in layer.exclude)


def filter_net(net):
    """A copy of ``net`` holding only the layers its ``state`` includes."""
    filtered = caffe_pb2.NetParameter()
    filtered.CopyFrom(net)
    del filtered.layer[:]
    filtered.layer.extend(layer for layer in net.layer if layer_included(layer, net.state))
    return filtered


def split_layer_name(blob, layer, top_index):
    return '%s_%s_%d_split' % (blob, layer, top_index)


def split_blob_name(blob, layer, top_index, split_index):
    return '%s_%s_%d_split_%d' % (blob, layer, top_index, split_index)


def insert_splits(net):
    """A copy of ``net`` where each top consumed more than once feeds a Split layer.

    A consumer is a bottom reference or a non-zero loss_weight on the top. The Split is named
    ``<blob>_<layer>_<top index>_split`` and its tops ``..._split_<k>``; when the top carried a loss
    weight, split top 0 takes it over and the consumers start at split top 1.
    """
    last_producer = {}
    bottom_source = {}
    consumers = {}
    loss_weights = {}
    for i, layer in enumerate(net.layer):
        for j, blob in enumerate(layer.bottom):
            if blob not in last_producer:
                raise NetError("Unknown bottom blob '%s' (layer '%s', bottom index %d)"
                               % (blob, layer.name, j))
            source = last_producer[blob]
            bottom_source[i, j] = source
            consumers[source] = consumers.get(source, 0) + 1
        for j, blob in enumerate(layer.top):
            last_producer[blob] = (i, j)
        for j in range(min(len(layer.loss_weight), len(layer.top))):
            source = last_producer[layer.top[j]]
            loss_weights[source] = layer.loss_weight[j]
            if layer.loss_weight[j]:
                consumers[source] = consumers.get(source, 0) + 1

    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layer[:]
    next_split = {}
    for i, original in enumerate(net.layer):
        layer = out.layer.add()
        layer.CopyFrom(original)
        for j, blob in enumerate(layer.bottom):
            source = bottom_source[i, j]
            if consumers.get(source, 0) > 1:
                producer = net.layer[source[0]].name
                k = next_split.get(source, 0)
                next_split[source] = k + 1
                layer.bottom[j] = split_blob_name(blob, producer, source[1], k)
        for j, blob in enumerate(layer.top):
            count = consumers.get((i, j), 0)
            if count <= 1:
                continue
            weight = loss_weights.get((i, j), 0.0)
            split = out.layer.add(name=split_layer_name(blob, layer.name, j), type='Split')
            split.bottom.append(blob)
            for k in range(count):
                split.top.append(split_blob_name(blob, layer.name, j, k))
                if weight:
                    split.loss_weight.append(weight if k == 0 else 0.0)
            if weight:
                layer.ClearField('loss_weight')
                next_split[i, j] = next_split.get((i, j), 0) + 1
    return out


def split_diff_groups(layer_types, bottom_ids, top_ids, bottom_need_backward, layer_need_backward,
                      top_loss):
    """Groups of Split-top blobs whose diffs can live in one buffer, from the built net's wiring.

    The diff of a top that a Split inserted (Caffe's insert_splits) is written by the backward of
    the last layer that reads it and read by the Split's backward, and is dead outside those
    layers; tops of different Splits whose spans do not overlap can share memory (GoogLeNet's
    inception inputs are each split four ways, which would otherwise keep four diffs per input).
    A top takes part only if its last reader overwrites its diff (propagates to it and is not
    in-place on it) and it carries no loss weight (a seeded diff must survive).

    Returns:
        a list of lists of blob ids, each list to share one diff buffer.
    """
    last_use = {}
    for index, (bottoms, tops) in enumerate(zip(bottom_ids, top_ids)):
        for blob_id in list(bottoms) + list(tops):
            last_use[blob_id] = index
    spans = []
    for index, kind in enumerate(layer_types):
        if kind != 'Split' or not layer_need_backward[index]:
            continue
        for top_index, blob_id in enumerate(top_ids[index]):
            reader = last_use.get(blob_id, index)
            if top_loss[index][top_index] or reader == index or blob_id in top_ids[reader] or \
                    not layer_need_backward[reader]:
                continue
            position = list(bottom_ids[reader]).index(blob_id)
            if bottom_need_backward[reader][position]:
                spans.append((reader, index, blob_id))
    # Backward runs from the last layer down: take spans in the order they start, each into the
    # first buffer all of whose occupants' Splits have run by then.
    groups = []
    for reader, split, blob_id in sorted(spans, key=lambda span: -span[0]):
        for group in groups:
            if reader < group['free_below']:
                group['blobs'].append(blob_id)
                group['free_below'] = split
                break
        else:
            groups.append({'blobs': [blob_id], 'free_below': split})
    return [group['blobs'] for group in groups]
