"""Background batch loading (Caffe's BasePrefetchingDataLayer, base_data_layer.cpp, and its
blocking queues): a thread fills ``prefetch`` batches ahead while the net computes.

A batch travels between two queues: the thread takes a free one, loads it, and hands it over as
full; forward takes a full one, hands its buffer to the top and gives back the one it took last
time. The thread holds no reference to its layer (only to a loader object), so a net that is dropped
stops its threads. An error while loading (a corrupt record, a missing image) reaches the net on the
forward that would have used the batch, as a DataError naming the record.
"""
import queue
import threading
import time
import weakref

import numpy as np

from cct.blob import Blob
from cct.errors import DataError
from cct.layers.base import Layer
from cct.log import logger

_STOP = object()


class Batch:
    """One prefetched batch: a ``data`` Blob (N x ...) and a ``label`` array (N,)."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.data_blob = Blob(dtype=dtype)
        self.label = np.zeros(0, dtype)
        self.loader_state = None    # the loader's resume state right after this batch

    @property
    def data(self):
        return self.data_blob.data

    def reshape_data(self, shape):
        self.data_blob.reshape(shape)
        return self.data_blob.data

    def reshape_label(self, count):
        if self.label.shape != (count,):
            self.label = np.empty(count, self.dtype)
        return self.label


class _Failure:
    def __init__(self, error):
        self.error = error


class Prefetcher:
    """Runs ``loader.load(batch)`` on a thread, ``count`` batches ahead of ``pop()``.

    Attributes:
        wait_seconds: total time ``pop`` spent waiting for the thread (the data wait of training).
    """

    def __init__(self, loader, count, dtype, name):
        self._free = queue.Queue()
        self._full = queue.Queue()
        self._current = None
        self._waits = 0
        self.wait_seconds = 0.0
        self._stopping = threading.Event()
        for _ in range(max(1, count)):
            self._free.put(Batch(dtype))
        self._thread = threading.Thread(target=self._run,
                                        args=(loader, self._free, self._full, self._stopping),
                                        name='cct-prefetch-%s' % name, daemon=True)
        self._thread.start()

    @staticmethod
    def _run(loader, free, full, stopping):
        while True:
            batch = free.get()
            if batch is _STOP or stopping.is_set():
                return
            try:
                loader.load(batch)
                batch.loader_state = loader.get_state() if hasattr(loader, 'get_state') else None
            except Exception as e:  # noqa: BLE001 -- handed to the consumer, which raises it
                full.put(_Failure(e))
                return
            full.put(batch)

    def pop(self):
        """The next loaded batch (the previous one goes back to be refilled)."""
        if self._current is not None:
            self._free.put(self._current)
            self._current = None
        try:
            item = self._full.get_nowait()
        except queue.Empty:
            # Caffe's BlockingQueue::pop logs this on the first wait and every 1000th after.
            if self._waits % 1000 == 0:
                logger.info('Waiting for data')
            self._waits += 1
            start = time.perf_counter()
            item = self._full.get()
            self.wait_seconds += time.perf_counter() - start
        if isinstance(item, _Failure):
            self._full.put(item)  # every later forward fails the same way
            raise item.error
        self._current = item
        return item

    def stop(self, timeout=5):
        """Ask the thread to finish (after the batch it is loading, if any) and wait for it;
        True once it has."""
        self._stopping.set()
        self._free.put(_STOP)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)
        return not self._thread.is_alive()


class PrefetchingDataLayer(Layer):
    """Base of the Data and ImageData layers: tops ``data`` and optional ``label`` (N,), filled from
    batches a loader prepares on a background thread.

    Subclasses implement ``make_loader()`` returning an object with ``first_shape()`` (the C x h x w
    of a top item), ``load(batch)``, and optionally ``get_state()``/``set_state(state)`` (its read
    position and generators as JSON-able values; without them the layer keeps no resume state). The state kept for a resume is the one right after the
    last batch forward consumed, not the prefetch thread's, which runs ahead.
    """

    num_bottom = 0
    min_top = 1
    max_top = 2

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
        top[0].share_data(batch.data_blob)
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
