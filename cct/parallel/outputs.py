"""A hybrid net's outputs, whole-batch: each output blob of the replicas is either a sum over the
shares (a loss, an accuracy: Layer.whole_batch_tops) or per-item values joined along axis 0."""
import numpy as np

from cct.blob import Blob
from cct.devices import get_device
from cct.errors import NetError


class CombinedOutputs:
    """Host blobs holding the whole batch's value of each output of ``primary`` (a replica).

    Attributes:
        blobs: {blob index in the replicas: the combined Blob}.
    """

    def __init__(self, primary, batch, dtype):
        producer = {}
        for layer_id, top_ids in enumerate(primary.top_ids):
            for top_index, blob_id in enumerate(top_ids):
                producer[blob_id] = (primary.layers[layer_id], top_index)
        self.names = primary.blob_names
        self.blobs = {}
        self._outputs = []
        for blob_id in primary.output_blob_indices:
            layer, top_index = producer[blob_id]
            summed = top_index in layer.whole_batch_tops
            shape = primary.blobs_list[blob_id].shape
            if not summed and shape:
                shape = (batch,) + shape[1:]
            combined = Blob(dtype=dtype, device=get_device('cpu'))
            combined.reshape(shape)
            self.blobs[blob_id] = combined
            self._outputs.append((blob_id, summed, combined, layer))

    def combine(self, replicas, shares, active):
        """Fill the combined blobs from the replicas in ``active`` (indices, in device order)."""
        for blob_id, summed, combined, layer in self._outputs:
            parts = [replicas[index].blobs_list[blob_id].data for index in active]
            if summed:
                value = parts[0].copy()
                for part in parts[1:]:
                    value = value + part
            else:
                for index, part in zip(active, parts):
                    if not part.ndim or part.shape[0] != shares[index]:
                        raise NetError("%s: output '%s' (shape %s) has no batch axis, so the "
                                       "shares' outputs cannot be joined"
                                       % (layer.where(), self.names[blob_id], part.shape))
                value = np.concatenate(parts, axis=0)
            if combined.shape != value.shape:
                combined.reshape(value.shape)
            combined.data[...] = value
