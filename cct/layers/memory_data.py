"""MemoryData (Caffe's memory_data_layer.cpp): batches taken in turn from arrays handed over from
Python (pycaffe's ``Net.set_input_arrays``, which calls ``reset``).

The rules that are easy to get wrong: the tops are batch_size x channels x height x width and a
(batch_size,) label; the arrays' item count must be a multiple of batch_size, and batches wrap
around at the end; the arrays are read where they are, so changing them after ``reset`` changes
the next batches; ``transform_param`` is not applied to them (Caffe warns).
"""
import numpy as np

from cct.errors import DataError
from cct.layers.base import Layer, register
from cct.log import logger


@register('MemoryData')
class MemoryDataLayer(Layer):
    # Copies host arrays; the batch reaches the device on its next use.
    host_layer = True
    num_bottom = 0
    num_top = 2

    def setup(self, bottom, top):
        param = self.param.memory_data_param
        self.batch_size = param.batch_size
        self.item_shape = (param.channels, param.height, param.width)
        if self.batch_size * int(np.prod(self.item_shape)) <= 0:
            self.fail('batch_size, channels, height, and width must be specified and positive in '
                      'memory_data_param', DataError)
        top[0].reshape((self.batch_size,) + self.item_shape)
        top[1].reshape(self.batch_size)
        self.data = self.labels = None
        self.position = 0

    def reset(self, data, labels):
        """Read batches from ``data`` (N x C x H x W) and ``labels`` (N items) from now on.

        Args:
            data: array of N items of this layer's channels x height x width.
            labels: N labels, of any shape holding N values (pycaffe passes N x 1 x 1 x 1).
        """
        data = np.asarray(data)
        labels = np.asarray(labels)
        count = data.shape[0] if data.ndim else 0
        if data.shape[1:] != self.item_shape:
            self.fail('data of shape %s; each item must be %d x %d x %d'
                      % ((data.shape,) + self.item_shape), DataError)
        if labels.size != count:
            self.fail('%d data items but %d labels' % (count, labels.size), DataError)
        if count == 0 or count % self.batch_size:
            self.fail('n must be a multiple of batch size (%d items, batch size %d)'
                      % (count, self.batch_size), DataError)
        if self.param.HasField('transform_param'):
            logger.warning('MemoryData does not transform array data on Reset()')
        self.data = data
        self.labels = labels.reshape(count)
        self.position = 0

    def set_batch_size(self, batch_size):
        """Change the batch size (Caffe's set_batch_size); the arrays must hold a multiple of it."""
        if self.data is not None and len(self.data) % batch_size:
            self.fail('n must be a multiple of batch size (%d items, batch size %d)'
                      % (len(self.data), batch_size), DataError)
        self.batch_size = batch_size
        self.position = 0

    def reshape(self, bottom, top):
        top[0].reshape((self.batch_size,) + self.item_shape)
        top[1].reshape(self.batch_size)

    def forward(self, bottom, top):
        if self.data is None:
            self.fail('MemoryDataLayer needs to be initialized by calling Reset (pycaffe: '
                      'net.set_input_arrays(data, labels))', DataError)
        end = self.position + self.batch_size
        top[0].data[...] = self.data[self.position:end]
        top[1].data[...] = self.labels[self.position:end]
        self.position = end % len(self.data)
