"""Pure graph logic of a net: NetState filtering (Caffe's Net::FilterNet and StateMeetsRule) and
automatic Split insertion (Caffe's util/insert_splits.cpp) before it is built, and the planning of
which blobs (Split tops, or all of them in training) can share diff memory once it is."""
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


def diff_sharing_groups(layer_types, bottom_ids, top_ids, bottom_need_backward,
                        layer_need_backward, top_loss, sizes, every_blob=False, excluded=()):
    """Groups of blobs whose diffs can live in one buffer, from the built net's wiring.

    A blob's diff is written by the backward of its last reader and read by the backward of the
    layer that produced it (and of the in-place layers between them, which rewrite it), and is
    dead outside that span of layers; blobs whose spans do not overlap can share memory.
    By default only the tops a Split inserted take part (Caffe's insert_splits: GoogLeNet's
    inception inputs are each split four ways, which would otherwise keep four diffs per input),
    which leaves every gradient a script can name where Caffe has it. ``every_blob`` lets every
    blob take part, for training where nothing reads a blob's diff after backward
    (Net.share_diffs). A blob takes part only if its last reader overwrites its diff (runs
    backward, propagates to it, and is not in-place on it), it carries no loss weight (a seeded
    diff must survive), and it is not in ``excluded`` (blobs whose diff buffer is another's too,
    or that a Python layer touches).

    Args:
        sizes: each blob's capacity, so that a blob goes to the free buffer that is already the
            largest (the sum of the buffers' sizes is what is allocated).

    Returns:
        a list of lists of blob ids, each list to share one diff buffer.
    """
    last_use, producer, weighted = {}, {}, set()
    for index, (bottoms, tops) in enumerate(zip(bottom_ids, top_ids)):
        for blob_id in list(bottoms) + list(tops):
            last_use[blob_id] = index
        for top_index, blob_id in enumerate(tops):
            producer.setdefault(blob_id, index)
            if top_loss[index][top_index]:
                weighted.add(blob_id)
    spans = []
    for blob_id, first in producer.items():
        reader = last_use[blob_id]
        if blob_id in excluded or blob_id in weighted or reader == first or \
                blob_id in top_ids[reader] or not layer_need_backward[reader]:
            continue
        if not every_blob and (layer_types[first] != 'Split' or not layer_need_backward[first]):
            continue
        if bottom_need_backward[reader][list(bottom_ids[reader]).index(blob_id)]:
            spans.append((reader, first, blob_id))
    # Backward runs from the last layer down: take spans in the order they start, each into the
    # largest buffer all of whose occupants' producers have run by then (a new one if none has).
    groups = []
    for reader, first, blob_id in sorted(spans, key=lambda span: -span[0]):
        free = [group for group in groups if reader < group['free_below']]
        if free:
            group = max(free, key=lambda group: group['size'])
            group['blobs'].append(blob_id)
            group['free_below'] = first
            group['size'] = max(group['size'], sizes[blob_id])
        else:
            groups.append({'blobs': [blob_id], 'free_below': first, 'size': sizes[blob_id]})
    return [group['blobs'] for group in groups]
