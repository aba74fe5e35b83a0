"""pycaffe's view of a Net (python/caffe/pycaffe.py and the Net part of _caffe.cpp): ordered dicts of
blobs and params, name lists, ``forward``/``backward`` taking and returning arrays by blob name,
batched ``forward_all``, weight sharing, MemoryData input and per-layer callbacks.

The dicts are built once per net (the net's structure never changes after construction), as
pycaffe caches them. ``forward``/``backward`` return *views* of blob memory: the next pass overwrites
them, while ``forward_all`` returns copies.
"""
import importlib
import itertools
from collections import OrderedDict
from functools import cached_property

import numpy as np

from cct.blob import shape_string
from cct.errors import CctError, NetError, WeightsError
from cct.log import logger


class PycaffeNetMixin:
    """pycaffe's Net attributes and methods, on top of cct's Net internals."""

    # Per-layer callbacks (pycaffe's before_forward & co.); instances replace these tuples.
    _before_forward = _after_forward = _before_backward = _after_backward = ()

    def _forward(self, start, end):
        """pycaffe's bound C++ Net::ForwardFromTo."""
        return self.forward_from_to(start, end)

    def _backward(self, start, end):
        """pycaffe's bound C++ Net::BackwardFromTo."""
        return self.backward_from_to(start, end)

    def forward_backward(self):
        """Caffe's Net::ForwardBackward: the loss of a whole forward, then a whole backward."""
        loss = self.forward_from_to()
        self.backward_from_to()
        return loss

    @cached_property
    def blobs(self):
        """OrderedDict blob name -> Blob, in creation order (split blobs included)."""
        return OrderedDict(zip(self.blob_names, self.blobs_list))

    @cached_property
    def params(self):
        """OrderedDict layer name -> list of its param Blobs (layers with params only)."""
        return OrderedDict((name, layer.blobs) for name, layer in
                           zip(self.layer_names, self.layers) if len(layer.blobs))

    @cached_property
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

    @cached_property
    def inputs(self):
        """Names of the input blobs (tops of Input layers)."""
        return [self.blob_names[i] for i in self.input_blob_indices]

    @cached_property
    def outputs(self):
        """Names of the output blobs (produced and never consumed), sorted by name."""
        return [self.blob_names[i] for i in self.output_blob_indices]

    @property
    def _blob_loss_weights(self):
        return list(self.loss_weight_by_blob)

    @cached_property
    def blob_loss_weights(self):
        return OrderedDict(zip(self.blob_names, self.loss_weight_by_blob))

    @cached_property
    def top_names(self):
        return OrderedDict((name, [self.blob_names[i] for i in ids])
                           for name, ids in zip(self.layer_names, self.top_ids))

    @cached_property
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

    # ------------------------------------------------------------------ passes
    def forward(self, blobs=None, start=None, end=None, **kwargs):
        """Run forward from layer ``start`` to ``end`` (names, inclusive).

        Args:
            blobs: names of extra blobs to return.
            start, end: layer names; default the first and the last layer.
            **kwargs: input blob name -> batch-sized array (exactly the net's inputs), copied in.

        Returns:
            dict of the outputs (or ``end``'s tops) plus ``blobs``, as views of the blob data.
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

        Returns:
            dict of the input diffs (or ``end``'s bottoms) plus ``diffs``, as views.
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
                    raise ValueError("Diff '%s' is not batch sized: %d items, the blob holds %d"
                                     % (name, array.shape[0], blob.shape[0]))
                blob.diff[...] = array
        self.backward_from_to(start_ind, end_ind)
        return {name: self.blob_by_name(name).diff for name in outputs}

    def _batch(self, blobs):
        """Split {name: array of any length} into net-batch-sized dicts; the last one is padded
        with zeros. The batch size is the first blob's first dimension."""
        if not blobs:
            return
        num = len(next(iter(blobs.values())))
        batch_size = self.blobs_list[0].shape[0]
        remainder = num % batch_size
        for start in range(0, num - remainder, batch_size):
            yield {name: blobs[name][start:start + batch_size] for name in blobs}
        if remainder > 0:
            padded = {}
            for name in blobs:
                padding = np.zeros((batch_size - remainder,) + blobs[name].shape[1:])
                padded[name] = np.concatenate([blobs[name][-remainder:], padding])
            yield padded

    @staticmethod
    def _stack(chunks, pad):
        """Concatenate per-batch copies; drop the padding rows of the last batch. Scalar blobs
        (losses) give one value per batch."""
        if chunks and np.ndim(chunks[0]) == 0:
            return np.asarray(chunks)
        stacked = np.concatenate(chunks) if chunks else np.empty(0)
        return stacked[:len(stacked) - pad] if pad else stacked

    def _padding(self, kwargs):
        if not kwargs:
            return 0
        num = len(next(iter(kwargs.values())))
        return -num % self.blobs_list[0].shape[0]

    def forward_all(self, blobs=None, **kwargs):
        """Run forward over inputs of any length, one net batch at a time.

        Args:
            blobs: names of extra blobs to collect.
            **kwargs: input blob name -> array of any length (all of the same length).

        Returns:
            {blob name: array} of the outputs and ``blobs`` for every input item (padding removed).
        """
        names = set(self.outputs + list(blobs or []))
        collected = {name: [] for name in names}
        batches = self._batch(kwargs) if kwargs else [{}]
        for batch in batches:
            outs = self.forward(blobs=blobs, **batch)
            for name, data in outs.items():
                collected[name].append(data.copy())
        pad = self._padding(kwargs)
        return {name: self._stack(chunks, pad) for name, chunks in collected.items()}

    def forward_backward_all(self, blobs=None, diffs=None, **kwargs):
        """Run forward and backward over inputs (and output diffs) of any length, batch by batch.

        Args:
            blobs: extra blobs to collect from forward.
            diffs: extra diffs to collect from backward.
            **kwargs: input blob arrays (for forward) and output blob diff arrays (for backward);
                the missing side runs on what the blobs hold (e.g. loss diffs).

        Returns:
            (all_blobs, all_diffs): dicts of arrays, padding removed.
        """
        collected_outs = {name: [] for name in set(self.outputs + list(blobs or []))}
        collected_diffs = {name: [] for name in set(self.inputs + list(diffs or []))}
        forward_batches = self._batch({name: kwargs[name] for name in self.inputs
                                       if name in kwargs})
        backward_batches = self._batch({name: kwargs[name] for name in self.outputs
                                        if name in kwargs})
        for forward_batch, backward_batch in itertools.zip_longest(
                forward_batches, backward_batches, fillvalue={}):
            for name, data in self.forward(blobs=blobs, **forward_batch).items():
                collected_outs[name].append(data.copy())
            for name, diff in self.backward(diffs=diffs, **backward_batch).items():
                collected_diffs[name].append(diff.copy())
        # pycaffe packs only min(len(outs), len(diffs)) entries into arrays (its zip of the two
        # dicts); cct packs them all.
        pad = self._padding(kwargs)
        return ({name: self._stack(chunks, pad) for name, chunks in collected_outs.items()},
                {name: self._stack(chunks, pad) for name, chunks in collected_diffs.items()})

    # ------------------------------------------------------------------ callbacks
    def before_forward(self, callback):
        """Call ``callback(layer_index)`` before each layer's forward."""
        self._before_forward = self._before_forward + (callback,)

    def after_forward(self, callback):
        """Call ``callback(layer_index)`` after each layer's forward."""
        self._after_forward = self._after_forward + (callback,)

    def before_backward(self, callback):
        """Call ``callback(layer_index)`` before each layer's backward step (every layer in the
        range, including those that need no gradient, as Caffe does)."""
        self._before_backward = self._before_backward + (callback,)

    def after_backward(self, callback):
        """Call ``callback(layer_index)`` after each layer's backward step."""
        self._after_backward = self._after_backward + (callback,)

    # ------------------------------------------------------------------ data and weights
    def set_input_arrays(self, data, labels):
        """Feed the net's first layer, a MemoryData layer, with ``data`` (N x C x H x W float32,
        C-contiguous) and ``labels`` (N, or N x 1 x 1 x 1); N must be a multiple of its
        batch size. The layer reads these arrays in place, batch after batch, without copying."""
        if not self.layers or self.layers[0].type != 'MemoryData':
            raise NetError('set_input_arrays may only be called if the first layer is a '
                           'MemoryDataLayer (net %r starts with %s)'
                           % (self.name, self.layers[0].describe() if self.layers else 'nothing'))
        layer = self.layers[0]
        if labels.ndim == 1:
            labels = np.ascontiguousarray(labels[:, np.newaxis, np.newaxis, np.newaxis])
        memory = layer.param.memory_data_param
        _check_input_array(data, 'data array', (memory.channels, memory.height, memory.width))
        _check_input_array(labels, 'labels array', (1, 1, 1))
        if data.shape[0] != labels.shape[0]:
            raise ValueError('data and labels must have the same first dimension (%d vs %d)'
                             % (data.shape[0], labels.shape[0]))
        if data.shape[0] % memory.batch_size != 0:
            raise ValueError('first dimensions of input arrays must be a multiple of batch size '
                             '(%d items, batch size %d)' % (data.shape[0], memory.batch_size))
        layer.reset(data, labels)

    def share_with(self, other):
        """Make this net's layers use ``other``'s param data, matched by layer name (Caffe's
        ShareTrainedLayersWith); layers ``other`` has and this net lacks are ignored."""
        for name, source_layer in zip(other.layer_names, other.layers):
            if not self.has_layer(name):
                logger.info('Ignoring source layer %s', name)
                continue
            target_blobs = self.layer_by_name(name).blobs
            if len(target_blobs) != len(source_layer.blobs):
                raise WeightsError("Incompatible number of blobs for layer '%s': %d here, %d in the "
                                   'source net' % (name, len(target_blobs), len(source_layer.blobs)))
            for j, (target, source) in enumerate(zip(target_blobs, source_layer.blobs)):
                if target.shape != source.shape or target.dtype != source.dtype:
                    raise WeightsError(
                        "Cannot share param %d weights from layer '%s'; shape mismatch.  Source "
                        'param shape is %s (%s); target param shape is %s (%s)' % (
                            j, name, shape_string(source.shape), source.dtype.name,
                            shape_string(target.shape), target.dtype.name))
                target.share_data(source)

    def save_hdf5(self, filename):
        """Write the weights as a .caffemodel.h5 (Caffe's ToHDF5, data only)."""
        _hdf5_helper('save_weights_hdf5')(self, filename)

    def load_hdf5(self, filename):
        """Load weights from a .caffemodel.h5 by layer name (Caffe's CopyTrainedLayersFromHDF5)."""
        _hdf5_helper('load_weights_hdf5')(self, filename)

    def export_onnx(self, path, opset=None, batch=None, dynamic_batch=False):
        """Write this TEST-phase net and its weights as an ONNX model (cct.export.export_onnx):
        ``batch`` exports at another batch size, ``dynamic_batch`` makes it symbolic."""
        from cct.export import DEFAULT_OPSET, export_onnx
        return export_onnx(self, path, DEFAULT_OPSET if opset is None else opset, batch=batch,
                           dynamic_batch=dynamic_batch)


def _hdf5_helper(name):
    try:
        hdf5 = importlib.import_module('cct.io.hdf5')
    except ModuleNotFoundError as e:
        if e.name != 'cct.io.hdf5':
            raise
        raise CctError('HDF5 weight files (.caffemodel.h5) are not supported by this cct yet; '
                       'use save()/copy_from() with a binary .caffemodel') from None
    return getattr(hdf5, name)


def _check_input_array(array, what, chw):
    """pycaffe's CheckContiguousArray for set_input_arrays."""
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
        raise ValueError('%s must be C contiguous' % what)
    if array.ndim != 4:
        raise ValueError('%s must be 4-d, got shape %s' % (what, array.shape))
    if array.dtype != np.float32:
        raise ValueError('%s must be float32, got %s' % (what, array.dtype))
    for axis, (name, expected) in enumerate(zip(('channels', 'height', 'width'), chw), 1):
        if array.shape[axis] != expected:
            raise ValueError('%s has wrong %s: %d, the MemoryData layer expects %d'
                             % (what, 'number of channels' if name == 'channels' else name,
                                array.shape[axis], expected))
