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
    of a top item) and ``load(batch)``.
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
        # Caffe reads data_param.prefetch for every prefetching layer (default 4).
        self.prefetcher = Prefetcher(loader, self.param.data_param.prefetch, self.dtype, self.name)
        weakref.finalize(self, self.prefetcher.stop)

    @property
    def wait_seconds(self):
        """Seconds forward has spent waiting for the prefetch thread."""
        return self.prefetcher.wait_seconds

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        batch = self.prefetcher.pop()
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


def where(layer):
    """The layer's description as error messages start with it: "Layer 'x' (type T)"."""
    text = layer.describe()
    return text[0].upper() + text[1:]


def check_batch_size(layer, batch_size):
    if batch_size <= 0:
        layer.fail('Positive batch size required (batch_size: %d)' % batch_size, DataError)
    return batch_size
