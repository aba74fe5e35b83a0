"""The base of the prefetching data layers (Caffe's BasePrefetchingDataLayer, base_data_layer.cpp):
tops filled from batches cct/data/prefetch.py loads on a background thread. Batches are host
arrays; on an accelerator each is copied to the device once per forward, as Caffe's data layers
transfer one batch at a time.
"""
import weakref

import numpy as np

from cct.data.prefetch import Prefetcher
from cct.errors import DataError
from cct.layers.base import Layer
from cct.log import logger


class PrefetchingDataLayer(Layer):
    """Base of the Data and ImageData layers: tops ``data`` and optional ``label`` (N,), filled from
    batches a loader prepares on a background thread.

    Subclasses implement ``make_loader()`` returning an object with ``first_shape()`` (the C x h x w
    of a top item), ``load(batch)``, and optionally ``get_state()``/``set_state(state)`` (its read
    position and generators as JSON-able values; without them the layer keeps no resume state).
    The state kept for a resume is the one right after the last batch forward consumed, not the
    prefetch thread's, which runs ahead.
    """

    num_bottom = 0
    min_top = 1
    max_top = 2
    host_layer = True

    def setup(self, bottom, top):
        self.output_labels = len(top) > 1
        self.loader = loader = self.make_loader()
        shape = (self.batch_size,) + tuple(loader.first_shape())
        top[0].reshape(shape)
        logger.info('output data size: %s', ','.join(str(d) for d in shape))
        if self.output_labels:
            top[1].reshape(self.batch_size)
        self._consumed_state = loader.get_state() if hasattr(loader, 'get_state') else None
        self._start_prefetching()

    def _start_prefetching(self):
        # Caffe reads data_param.prefetch for every prefetching layer (default 4).
        self.prefetcher = Prefetcher(self.loader, self.param.data_param.prefetch, self.dtype,
                                     self.name)
        weakref.finalize(self, self.prefetcher.stop)

    def resume_state(self):
        return self._consumed_state

    def set_resume_state(self, state):
        """Drop the batches loaded ahead and go on loading from ``state``."""
        if not self.prefetcher.stop(timeout=120):
            self.fail('the prefetch thread did not stop within 120 s', DataError)
        self.loader.set_state(state)
        self._consumed_state = state
        self._start_prefetching()

    @property
    def wait_seconds(self):
        """Seconds forward has spent waiting for the prefetch thread."""
        return self.prefetcher.wait_seconds

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        batch = self.prefetcher.pop()
        self._consumed_state = batch.loader_state
        # Reshape to the loaded data (Caffe: the first datum of each batch sets its shape), then
        # hand the batch's buffer to the top without a copy, as Caffe's set_cpu_data does: it
        # stays the top's until the next forward gives it back to the prefetch thread.
        top[0].reshape(batch.data_blob.shape)
        if top[0].device.host:
            top[0].share_data(batch.data_blob)
        else:
            self.device.from_host(batch.data_blob.data, out=top[0].dev_data)
        if self.output_labels:
            top[1].reshape(batch.label.shape)
            np.copyto(top[1].data, batch.label)


def check_batch_size(layer, batch_size):
    if batch_size <= 0:
        layer.fail('Positive batch size required (batch_size: %d)' % batch_size, DataError)
    return batch_size
