"""pycaffe's view of a Net (python/caffe/pycaffe.py): ordered dicts of blobs and params, name lists,
and ``forward``/``backward`` taking and returning arrays by blob name."""
from collections import OrderedDict


class PycaffeNetMixin:
    """pycaffe's Net attributes and methods, on top of cct's Net internals."""

    @property
    def blobs(self):
        """OrderedDict blob name -> Blob, in creation order (split blobs included)."""
        return OrderedDict(zip(self.blob_names, self.blobs_list))

    @property
    def params(self):
        """OrderedDict layer name -> list of its param Blobs (layers with params only)."""
        return OrderedDict((name, list(layer.blobs)) for name, layer in
                           zip(self.layer_names, self.layers) if len(layer.blobs))

    @property
    def layer_dict(self):
        return OrderedDict(zip(self.layer_names, self.layers))

    @property
    def _layer_names(self):
        return list(self.layer_names)

    @property
    def _blob_names(self):
        return list(self.blob_names)

    @property
    def _blobs(self):
        return list(self.blobs_list)

    @property
    def _inputs(self):
        return list(self.input_blob_indices)

    @property
    def _outputs(self):
        return list(self.output_blob_indices)

    @property
    def inputs(self):
        return [self.blob_names[i] for i in self.input_blob_indices]

    @property
    def outputs(self):
        return [self.blob_names[i] for i in self.output_blob_indices]

    @property
    def _blob_loss_weights(self):
        return list(self.loss_weight_by_blob)

    @property
    def blob_loss_weights(self):
        return OrderedDict(zip(self.blob_names, self.loss_weight_by_blob))

    @property
    def top_names(self):
        return OrderedDict((name, [self.blob_names[i] for i in ids])
                           for name, ids in zip(self.layer_names, self.top_ids))

    @property
    def bottom_names(self):
        return OrderedDict((name, [self.blob_names[i] for i in ids])
                           for name, ids in zip(self.layer_names, self.bottom_ids))

    def _bottom_ids(self, i):
        return list(self.bottom_ids[i])

    def _top_ids(self, i):
        return list(self.top_ids[i])

    def _layer_position(self, name):
        try:
            return self.layer_names.index(name)
        except ValueError:
            raise KeyError("Unknown layer name '%s' in net '%s'" % (name, self.name)) from None

    def forward(self, blobs=None, start=None, end=None, **kwargs):
        """Run forward from layer ``start`` to ``end`` (names, inclusive).

        Keyword arguments set the net inputs (exactly the inputs, batch-sized). Returns a dict of
        the outputs (or ``end``'s tops) plus ``blobs``, as views of the blob data.
        """
        blobs = list(blobs or [])
        start_ind = self._layer_position(start) if start is not None else 0
        if end is not None:
            end_ind = self._layer_position(end)
            outputs = set(self.top_names[end] + blobs)
        else:
            end_ind = len(self.layers) - 1
            outputs = set(self.outputs + blobs)
        if kwargs:
            if set(kwargs) != set(self.inputs):
                raise ValueError('Input blob arguments %s do not match net inputs %s'
                                 % (sorted(kwargs), sorted(self.inputs)))
            for name, array in kwargs.items():
                blob = self.blob_by_name(name)
                if array.shape[0] != blob.shape[0]:
                    raise ValueError("Input '%s' is not batch sized: %d items, the blob holds %d"
                                     % (name, array.shape[0], blob.shape[0]))
                blob.data[...] = array
        self.forward_from_to(start_ind, end_ind)
        return {name: self.blob_by_name(name).data for name in outputs}

    def backward(self, diffs=None, start=None, end=None, **kwargs):
        """Run backward from layer ``start`` down to ``end``; keyword arguments set output diffs.

        Returns a dict of the input diffs (or ``end``'s bottoms) plus ``diffs``.
        """
        diffs = list(diffs or [])
        start_ind = self._layer_position(start) if start is not None else len(self.layers) - 1
        if end is not None:
            end_ind = self._layer_position(end)
            outputs = set(self.bottom_names[end] + diffs)
        else:
            end_ind = 0
            outputs = set(self.inputs + diffs)
        if kwargs:
            if set(kwargs) != set(self.outputs):
                raise ValueError('Top diff arguments %s do not match net outputs %s'
                                 % (sorted(kwargs), sorted(self.outputs)))
            for name, array in kwargs.items():
                blob = self.blob_by_name(name)
                if array.shape[0] != blob.shape[0]:
                    raise ValueError("Diff '%s' is not batch sized" % name)
                blob.diff[...] = array
        self.backward_from_to(start_ind, end_ind)
        return {name: self.blob_by_name(name).diff for name in outputs}
