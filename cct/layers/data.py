"""Data (Caffe's data_layer.cpp): batches of Datum records read from an LMDB or LevelDB database in
key order, transformed by ``transform_param`` and prefetched on a background thread.

The rules that are easy to get wrong:

* ``backend`` defaults to LEVELDB (Caffe's default), so an LMDB source needs ``backend: LMDB``.
* Records are read in key order; at the end the cursor wraps to the first record and logs
  "Restarting data prefetching from start.", so an epoch boundary can fall inside a batch.
* The first datum of each batch sets the batch's shape; every later datum of that batch must have
  the same channels (and the same size unless ``crop_size`` is set). The top shapes follow the
  batch, so a net whose images change size between batches is reshaped, as in Caffe.
* The label top has shape (N,). ``rand_skip`` is ignored and ``force_encoded_color`` unused, as in
  Caffe 1.0. Each Data layer has its own cursor: several in one net (or a train and a test net on
  one source) each read from the first record.
* With several training processes (``runtime.solver_count()`` > 1, as compute groups set it), a
  TRAIN layer reads only the records i with ``i mod count == rank`` (cct.data.shard), as Caffe's
  multi-GPU Skip() does.
"""
from cct import rng
from cct.data.datum import datum_to_image, parse_datum
from cct.data.db import Reader
from cct.data.shard import Shard
from cct.data.transformer import DataTransformer
from cct.errors import DataError
from cct.layers.base import register
from cct.layers.prefetching import PrefetchingDataLayer, check_batch_size
from cct.log import logger


class DatumLoader:
    """Reads consecutive records of a database into batches (runs on the prefetch thread)."""

    def __init__(self, reader, batch_size, transformer, where, shard=None):
        self.reader = reader
        self.shard = shard or Shard()
        self.cursor = reader.cursor()
        self.batch_size = batch_size
        self.transformer = transformer
        self.where = where
        self._resume_key = None

    def get_state(self):
        """The key of the next record to read (None: the first) and the transform's generator."""
        cursor = self.cursor
        key = cursor.key if cursor.valid else self._resume_key
        return {'next_key': None if key is None else key.hex(),
                'transform_rng': rng.generator_state(self.transformer.generator)}

    def set_state(self, state):
        self.cursor.close()
        self.cursor = self.reader.cursor()
        key = state.get('next_key')
        self._resume_key = None if key is None else bytes.fromhex(key)
        rng.set_generator_state(self.transformer.generator, state.get('transform_rng'))

    def _record(self, key):
        return "%s: record '%s' of %s" % (self.where, key.decode('utf-8', 'replace'),
                                          self.reader.path)

    def _image(self, key, value):
        where = self._record(key)
        datum = parse_datum(value, where)
        if not datum.encoded:
            self.transformer.warn_force_on_raw()
        return datum, datum_to_image(datum, where, self.transformer.decode_color), where

    def first_shape(self):
        first = self.reader.first()
        if first is None:
            raise DataError('%s: the database %s is empty' % (self.where, self.reader.path))
        _, image, where = self._image(*first)
        return self.transformer.output_shape(image, where)

    def load(self, batch):
        cursor = self.cursor
        cursor.ensure_started()
        if self._resume_key is not None:
            cursor.seek(self._resume_key)
            self._resume_key = None
        data = label = None
        for item in range(self.batch_size):
            if not cursor.valid:
                raise DataError('%s: the database %s is empty' % (self.where, self.reader.path))
            while not self.shard.keep():
                self._next()
            datum, image, where = self._image(cursor.key, cursor.value)
            if item == 0:
                shape = (self.batch_size,) + self.transformer.output_shape(image, where)
                data = batch.reshape_data(shape)
                label = batch.reshape_label(self.batch_size)
            self.transformer.transform(image, data[item], where)
            label[item] = datum.label
            self._next()

    def _next(self):
        cursor = self.cursor
        cursor.next()
        if not cursor.valid:
            logger.info('Restarting data prefetching from start.')
            cursor.seek_to_first()
        self.shard.advance()


@register('Data')
class DataLayer(PrefetchingDataLayer):

    def make_loader(self):
        param = self.param.data_param
        self.batch_size = check_batch_size(self, param.batch_size)
        if not param.source:
            self.fail('data_param needs a source (the database path)', DataError)
        try:
            reader = Reader(param.source, param.backend)
        except DataError as e:
            self.fail(str(e), DataError)
        transformer = DataTransformer(self.param.transform_param, self.phase, self.dtype,
                                      self.where())
        return DatumLoader(reader, self.batch_size, transformer, self.where(),
                           Shard.for_layer(self))
