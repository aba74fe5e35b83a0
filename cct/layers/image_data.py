"""ImageData (Caffe's image_data_layer.cpp): batches of image files named in a list file, read with
OpenCV, transformed by ``transform_param`` and prefetched on a background thread.

The rules that are easy to get wrong:

* List lines are ``path label``, split at the *last* space; ``root_folder`` is prefixed to the path
  as a plain string (so it needs its trailing slash).
* Images are read in colour (BGR) unless ``is_color: false``, and resized to new_height x new_width
  when both are set (setting only one is an error); ``batch_size`` defaults to 1.
* ``shuffle`` shuffles the list at setup and again at every wrap-around; ``rand_skip`` starts at a
  random line below it. The first image of each batch sets the batch's shape.
* A file that cannot be read is an error naming the file and its line in the list.
* With several training processes, a TRAIN layer reads only the lines i (counted on across
  epochs) with ``i mod count == rank`` (cct.data.shard); Caffe 1.0 shards only Data and HDF5Data.
"""
import numpy as np

from cct import rng
from cct.data import images
from cct.data.shard import Shard
from cct.data.transformer import DataTransformer
from cct.errors import DataError
from cct.layers.base import register
from cct.layers.prefetching import PrefetchingDataLayer, check_batch_size
from cct.log import logger


class ImageListLoader:
    """Reads consecutive lines of an image list into batches (runs on the prefetch thread)."""

    def __init__(self, lines, position, param, batch_size, transformer, generator, where,
                 shard=None):
        self.lines = lines
        self.shard = shard or Shard()
        self.position = position
        self.param = param
        self.batch_size = batch_size
        self.transformer = transformer
        self.generator = generator
        self.where = where
        self._order_of = self._order = None

    def _read(self):
        name, label, line = self.lines[self.position]
        path = self.param.root_folder + name
        image = images.read_image(path, self.param.new_height, self.param.new_width,
                                  self.param.is_color)
        place = '%s: %s line %d (%s)' % (self.where, self.param.source, line, path)
        if image is None:
            raise DataError('%s: Could not load %s' % (place, name))
        return images.to_chw(image), label, place

    def get_state(self):
        """The next line to read, the list's order (line numbers, when shuffled) and the
        shuffle's and the transform's generators."""
        return {'position': self.position,
                'order': self._line_order() if self.generator is not None else None,
                'shuffle_rng': rng.generator_state(self.generator),
                'transform_rng': rng.generator_state(self.transformer.generator)}

    def _line_order(self):
        # get_state runs after every batch, the order changes once an epoch: list the line
        # numbers once per shuffled list (states share it; nothing changes it in place).
        if self._order_of is not self.lines:
            self._order = [number for _, _, number in self.lines]
            self._order_of = self.lines
        return self._order

    def set_state(self, state):
        if state.get('order') is not None:
            by_number = {entry[2]: entry for entry in self.lines}
            try:
                self.lines = [by_number[number] for number in state['order']]
            except KeyError as e:
                raise DataError('%s: %s has no line %s to go on from (the list changed since the '
                                'position was saved?)' % (self.where, self.param.source, e))
        if not 0 <= state['position'] < len(self.lines):
            raise DataError('%s: %s has %d lines, cannot go on from line %d'
                            % (self.where, self.param.source, len(self.lines),
                               state['position'] + 1))
        self.position = state['position']
        rng.set_generator_state(self.generator, state.get('shuffle_rng'))
        rng.set_generator_state(self.transformer.generator, state.get('transform_rng'))

    def shuffle(self):
        order = self.generator.permutation(len(self.lines))
        self.lines = [self.lines[i] for i in order]

    def first_shape(self):
        image, _, place = self._read()
        return self.transformer.output_shape(image, place)

    def load(self, batch):
        data = label = None
        for item in range(self.batch_size):
            while not self.shard.keep():
                self._next()
            image, item_label, place = self._read()
            if item == 0:
                shape = (self.batch_size,) + self.transformer.output_shape(image, place)
                data = batch.reshape_data(shape)
                label = batch.reshape_label(self.batch_size)
            self.transformer.transform(image, data[item], place)
            label[item] = item_label
            self._next()

    def _next(self):
        self.position += 1
        if self.position >= len(self.lines):
            logger.debug('Restarting data prefetching from start.')
            self.position = 0
            if self.param.shuffle:
                self.shuffle()
        self.shard.advance()


@register('ImageData')
class ImageDataLayer(PrefetchingDataLayer):
    num_top = 2
    min_top = max_top = None

    def make_loader(self):
        param = self.param.image_data_param
        self.batch_size = check_batch_size(self, param.batch_size)
        if (param.new_height == 0) != (param.new_width == 0):
            self.fail('Current implementation requires new_height and new_width to be set at '
                      'the same time.', DataError)
        logger.info('Opening file %s', param.source)
        try:
            entries = images.read_image_list(param.source)
        except DataError as e:
            self.fail(str(e), DataError)
        if not entries:
            self.fail('File is empty: %s' % param.source, DataError)
        lines = [(name, label, number) for number, (name, label) in enumerate(entries, 1)]
        generator = None
        transformer = DataTransformer(self.param.transform_param, self.phase, self.dtype,
                                      self.where())
        if param.shuffle:
            logger.info('Shuffling data')
            generator = np.random.default_rng(rng.generator().integers(2 ** 63))
        loader = ImageListLoader(lines, 0, param, self.batch_size, transformer, generator,
                                 self.where(), Shard.for_layer(self))
        if param.shuffle:
            loader.shuffle()
        logger.info('A total of %d images.', len(lines))
        if param.rand_skip:
            skip = int(rng.generator().integers(param.rand_skip))
            logger.info('Skipping first %d data points.', skip)
            if skip >= len(lines):
                self.fail('Not enough points to skip (%d of %d lines)' % (skip, len(lines)),
                          DataError)
            loader.position = skip
        return loader
