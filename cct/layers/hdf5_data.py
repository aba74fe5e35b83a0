"""HDF5Data and HDF5Output (Caffe's hdf5_data_layer.cpp and hdf5_output_layer.cpp), through h5py.

The rules that are easy to get wrong:

* HDF5Data's ``source`` is a text file of .h5 paths (whitespace-separated, so no spaces in them).
  Each top reads the dataset named like the top; float and integer datasets are converted to the
  net's float type; all of a file's datasets must share their first dimension, and a top's shape is
  (batch_size,) + the dataset's other dimensions.
* Rows are read in order and files one after the other (one file in memory at a time), wrapping at
  the end. ``shuffle`` permutes the files at every wrap and the rows of each file as it is loaded
  (rows of two files never mix). There is no transform_param and no prefetching, as in Caffe.
  With several training processes, a TRAIN layer takes only the rows i (counted over files and
  epochs) with ``i mod count == rank`` (cct.data.shard), as Caffe's multi-GPU Skip() does.
* HDF5Output creates (truncates) ``file_name`` at setup and writes its two bottoms as datasets
  "data" and "label" with their legacy 4-D (num, channels, height, width) shapes. Caffe can write
  one batch per file only: a second forward fails because the datasets exist; cct says so.
"""
import weakref

import numpy as np

from cct import rng
from cct.data.shard import Shard
from cct.errors import DataError, install_hint
from cct.layers.base import Layer, register
from cct.log import logger


def _h5py():
    try:
        import h5py
    except ImportError:
        raise DataError('HDF5 data layers need the h5py package: '
                        + install_hint('data', 'h5py>=3')) from None
    return h5py


def _read_file_list(layer, source):
    try:
        with open(source) as f:
            return f.read().split()
    except OSError:
        layer.fail('Failed to open source file: %s' % source, DataError)


@register('HDF5Data')
class HDF5DataLayer(Layer):
    # Reads on the host; the batch reaches the device on its next use.
    host_layer = True
    num_bottom = 0
    min_top = 1

    def setup(self, bottom, top):
        if self.param.HasField('transform_param'):
            self.fail('HDF5Data does not transform data.', DataError)
        param = self.param.hdf5_data_param
        self.batch_size = param.batch_size
        if self.batch_size <= 0:
            self.fail('Positive batch size required (batch_size: %d)' % self.batch_size,
                      DataError)
        logger.info('Loading list of HDF5 filenames from: %s', param.source)
        self.filenames = _read_file_list(self, param.source)
        logger.info('Number of HDF5 files: %d', len(self.filenames))
        if not self.filenames:
            self.fail('Must have at least 1 HDF5 filename listed in %s' % param.source, DataError)
        self.shuffle = param.shuffle
        self.generator = np.random.default_rng(rng.generator().integers(2 ** 63)) \
            if self.shuffle else None
        self.file_order = np.arange(len(self.filenames))
        if self.shuffle:
            self.generator.shuffle(self.file_order)
        self.current_file = 0
        self.row_shapes = None
        self._load(self.filenames[self.file_order[0]])
        self.current_row = 0
        self.shard = Shard.for_layer(self)
        for blob, rows in zip(top, self.columns):
            blob.reshape((self.batch_size,) + rows.shape[1:])

    def _load(self, filename):
        h5py = _h5py()
        logger.debug('Loading HDF5 file: %s', filename)
        try:
            handle = h5py.File(filename, 'r')
        except OSError as e:
            self.fail('Failed opening HDF5 file: %s (%s)' % (filename, e), DataError)
        columns = []
        with handle:
            for name in self.param.top:
                if name not in handle or not isinstance(handle[name], h5py.Dataset):
                    self.fail('Failed to find HDF5 dataset %s in %s' % (name, filename),
                              DataError)
                dataset = handle[name]
                if dataset.dtype.kind not in 'fiu':
                    self.fail('dataset %s of %s: unsupported datatype %s (float or integer '
                              'datasets only)' % (name, filename, dataset.dtype), DataError)
                if dataset.ndim < 1:
                    self.fail('dataset %s of %s: Input must have at least 1 axis.'
                              % (name, filename), DataError)
                columns.append(np.asarray(dataset[()], dtype=self.dtype))
        num = columns[0].shape[0]
        for name, column in zip(self.param.top, columns):
            if column.shape[0] != num:
                self.fail('%s: dataset %s has %d rows, dataset %s has %d; all must have the same'
                          % (filename, self.param.top[0], num, name, column.shape[0]), DataError)
        shapes = [column.shape[1:] for column in columns]
        if self.row_shapes is not None and shapes != self.row_shapes:
            self.fail('%s: rows of shape %s, the first file had %s'
                      % (filename, shapes, self.row_shapes), DataError)
        if num == 0:
            self.fail('%s: the datasets have no rows' % filename, DataError)
        self.row_shapes = shapes
        self.columns = columns
        self.row_order = np.arange(num)
        if self.shuffle:
            self.generator.shuffle(self.row_order)

    def _next_file(self):
        if len(self.filenames) > 1:
            self.current_file += 1
            if self.current_file == len(self.filenames):
                self.current_file = 0
                if self.shuffle:
                    self.generator.shuffle(self.file_order)
                logger.debug('Looping around to first file.')
            self._load(self.filenames[self.file_order[self.current_file]])
        elif self.shuffle:
            self.generator.shuffle(self.row_order)
        self.current_row = 0

    def resume_state(self):
        """The file and row to go on from, both orders and the shuffle's generator."""
        return {'current_file': self.current_file, 'current_row': self.current_row,
                'file_order': self.file_order.tolist(), 'row_order': self.row_order.tolist(),
                'shuffle_rng': rng.generator_state(self.generator)}

    def set_resume_state(self, state):
        file_order = np.asarray(state['file_order'], np.int64)
        if sorted(file_order.tolist()) != list(range(len(self.filenames))):
            self.fail('the resume state lists %d HDF5 files, %s lists %d'
                      % (len(file_order), self.param.hdf5_data_param.source,
                         len(self.filenames)), DataError)
        self.file_order = file_order
        self.current_file = state['current_file']
        self._load(self.filenames[self.file_order[self.current_file]])
        row_order = np.asarray(state['row_order'], np.int64)
        if sorted(row_order.tolist()) != list(range(len(self.row_order))):
            self.fail('the resume state has %d rows for %s, the file has %d'
                      % (len(row_order), self.filenames[self.file_order[self.current_file]],
                         len(self.row_order)), DataError)
        self.row_order = row_order
        self.current_row = state['current_row']
        rng.set_generator_state(self.generator, state.get('shuffle_rng'))

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        if self.shard.count > 1:
            return self._forward_sharded(top)
        filled = 0
        while filled < self.batch_size:
            take = min(self.batch_size - filled, len(self.row_order) - self.current_row)
            rows = self.row_order[self.current_row:self.current_row + take]
            for blob, column in zip(top, self.columns):
                np.take(column, rows, axis=0, out=blob.data[filled:filled + take])
            filled += take
            self.current_row += take
            if self.current_row == len(self.row_order):
                self._next_file()

    def _forward_sharded(self, top):
        for item in range(self.batch_size):
            while not self.shard.keep():
                self._next_row()
            row = self.row_order[self.current_row]
            for blob, column in zip(top, self.columns):
                blob.data[item] = column[row]
            self._next_row()

    def _next_row(self):
        self.current_row += 1
        if self.current_row == len(self.row_order):
            self._next_file()
        self.shard.advance()


@register('HDF5Output')
class HDF5OutputLayer(Layer):
    host_layer = True
    num_bottom = 2
    num_top = 0

    def setup(self, bottom, top):
        self.file_name = self.param.hdf5_output_param.file_name
        h5py = _h5py()
        try:
            self.file = h5py.File(self.file_name, 'w')
        except OSError as e:
            self.fail('Failed to open HDF5 file %s (%s)' % (self.file_name, e), DataError)
        weakref.finalize(self, self.file.close)

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        if bottom[0].num != bottom[1].num:
            self.fail('data blob and label blob must have the same batch size (%d vs %d)'
                      % (bottom[0].num, bottom[1].num), DataError)
        logger.info('Saving HDF5 file %s', self.file_name)
        for name, blob in (('data', bottom[0]), ('label', bottom[1])):
            if name in self.file:
                # Caffe's H5LTmake_dataset fails on the second batch too: one batch per file.
                raise DataError('%s: %s already holds a "%s" dataset; HDF5Output writes one '
                                'batch per file, as Caffe does (run a single forward, or one '
                                'net per batch)' % (self.where(), self.file_name, name))
            legacy = tuple(blob.legacy_shape(i) for i in range(4))
            self.file.create_dataset(name, data=blob.data.reshape(legacy))
        self.file.flush()
        logger.info('Successfully saved %d rows', bottom[0].num)

    def backward(self, top, propagate_down, bottom):
        pass
