"""Background batch loading (the thread and blocking queues of Caffe's BasePrefetchingDataLayer,
base_data_layer.cpp): a thread fills ``prefetch`` batches ahead while the net computes. The layer
that pops them is cct/layers/prefetching.py.

A batch travels between two queues: the thread takes a free one, loads it, and hands it over as
full; forward takes a full one, hands its buffer to the top and gives back the one it took last
time. The thread holds no reference to its layer (only to a loader object), so a net that is dropped
stops its threads. An error while loading (a corrupt record, a missing image) reaches the net on the
forward that would have used the batch, as a DataError naming the record.
"""
import queue
import threading
import time

import numpy as np

from cct.blob import Blob
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

