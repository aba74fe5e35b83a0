"""Layers that route blobs rather than compute on them: Silence, Filter, BatchReindex and Parameter
(Caffe's silence_layer.cpp, filter_layer.cpp, batch_reindex_layer.cpp, parameter_layer.cpp).

Easy to get wrong, all as Caffe does it. Silence has no tops and its backward *writes zeros* into the
bottoms' diffs. Filter keeps the items (first-axis entries) whose selector, the last bottom, is
non-zero; the selector must be (N) or (N, 1, 1, ...), the number of kept items changes from batch to
batch, and the very first reshape (at net setup, before any data) keeps all N. BatchReindex gathers
``top[i] = data[indices[i]]`` from a 1-D index bottom (repeats allowed; backward adds them up).
Parameter exposes its single learnable blob (``parameter_param.shape``, zero-initialised: Caffe gives
it no filler) as its top, sharing data and diff. Index and selector inputs get no gradient.
"""
import math

import numpy as np

from cct.layers.base import Layer, register


class _IndexInputLayer(Layer):
    """A layer whose last bottom holds indices or a selector, which has no gradient."""

    def allow_force_backward(self, bottom_index):
        # Caffe aborts when force_backward reaches the index input; cct leaves that input out.
        return bottom_index != self.index_bottom

    primitives = ('gather_rows', 'scatter_add_rows', 'fill')

    @staticmethod
    def _rows(array):
        """``array`` as (items, values per item), the rows the indices pick."""
        return array.reshape(array.shape[0], math.prod(array.shape[1:]))

    def refuse_index_gradient(self, propagate_down):
        if len(propagate_down) > self.index_bottom and propagate_down[self.index_bottom]:
            self.fail('cannot backpropagate to the index (selector) input, bottom %d'
                      % self.index_bottom)


@register('Silence')
class SilenceLayer(Layer):
    primitives = ('fill',)
    min_bottom = 1
    num_top = 0

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        for blob, wanted in zip(bottom, propagate_down):
            if wanted:
                self.device.fill(blob.dev_diff, 0)


@register('Filter')
class FilterLayer(_IndexInputLayer):
    min_bottom = 2
    min_top = 1
    inplace = False

    def setup(self, bottom, top):
        if len(top) != len(bottom) - 1:
            self.fail('top.size() should be equal to bottom.size() - 1 (%d tops, %d bottoms)'
                      % (len(top), len(bottom)))
        self.index_bottom = len(bottom) - 1
        self.first_reshape = True

    def reshape(self, bottom, top):
        selector = bottom[-1]
        if any(d != 1 for d in selector.shape[1:]):
            self.fail('selector blob dimensions must be singletons (1), except the first; got %s'
                      % (selector.shape,))
        for i, blob in enumerate(bottom[:-1]):
            if blob.shape[:1] != selector.shape[:1]:
                self.fail('each bottom should have the same 0th dimension as the selector blob '
                          '(bottom %d: %s, selector: %s)' % (i, blob.shape, selector.shape))
        self.kept = np.flatnonzero(selector.data.reshape(-1))
        kept_count = len(self.kept)
        if self.first_reshape:
            kept_count = bottom[0].shape[0]
            self.first_reshape = False
        for blob, source in zip(top, bottom):
            blob.reshape((kept_count,) + source.shape[1:])

    def forward(self, bottom, top):
        for blob, source in zip(top, bottom):
            # Right after setup the top still holds the whole batch (see reshape); fill its head.
            self.device.gather_rows(self._rows(source.dev_data), self.kept,
                                    self._rows(blob.dev_data))

    def backward(self, top, propagate_down, bottom):
        self.refuse_index_gradient(propagate_down)
        for i, blob in enumerate(top):
            if propagate_down[i]:
                grad = self._rows(bottom[i].dev_diff)
                self.device.fill(grad, 0)
                self.device.scatter_add_rows(self._rows(blob.dev_diff), self.kept, grad)


@register('BatchReindex')
class BatchReindexLayer(_IndexInputLayer):
    num_bottom = 2
    num_top = 1
    index_bottom = 1

    def reshape(self, bottom, top):
        if bottom[1].ndim != 1:
            self.fail('the index bottom must be 1-D, got shape %s' % (bottom[1].shape,))
        top[0].reshape(bottom[1].shape[:1] + bottom[0].shape[1:])

    def _indices(self, bottom):
        values = bottom[1].data
        indices = values.astype(np.int64)
        if (indices < 0).any():
            self.fail('index specified for reindex layer was negative: %d'
                      % indices[indices < 0][0])
        if (indices >= bottom[0].shape[0]).any():
            self.fail('index specified for reindex layer was greater than batch size: %d >= %d'
                      % (indices[indices >= bottom[0].shape[0]][0], bottom[0].shape[0]))
        return indices

    def forward(self, bottom, top):
        self.device.gather_rows(self._rows(bottom[0].dev_data), self._indices(bottom),
                                self._rows(top[0].dev_data))

    def backward(self, top, propagate_down, bottom):
        self.refuse_index_gradient(propagate_down)
        if not propagate_down[0]:
            return
        grad = self._rows(bottom[0].dev_diff)
        self.device.fill(grad, 0)
        self.device.scatter_add_rows(self._rows(top[0].dev_diff), self._indices(bottom), grad)


@register('Parameter')
class ParameterLayer(Layer):
    primitives = ()
    num_bottom = 0
    num_top = 1

    def setup(self, bottom, top):
        shape = tuple(self.param.parameter_param.shape.dim)
        self.make_param_blobs([(shape, None)])

    def shares_diffs(self):
        return True

    def reshape(self, bottom, top):
        top[0].reshape(self.blobs[0].shape)
        top[0].share_data(self.blobs[0])
        top[0].share_diff(self.blobs[0])

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        pass
