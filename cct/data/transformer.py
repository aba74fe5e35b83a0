"""Caffe's DataTransformer (data_transformer.cpp): the ``transform_param`` of data layers.

The rules that are easy to get wrong:

* Order and arithmetic: ``(pixel - mean) * scale`` in the net's float type; the mean is subtracted
  *before* scaling, so ``scale: 0.00390625`` with ``mean_value: 128`` gives values in [-0.5, 0.5).
* ``mean_file`` is a full C x H x W BlobProto (compute_image_mean's output) indexed at the pixel's
  *uncropped* position, so its size is the image's, not the crop's. It cannot be combined with
  ``mean_value``, which gives one value for every channel or one per channel.
* ``crop_size``: a random window (offset drawn from [0, H - crop]) in TRAIN, the centre window
  (offset ``(H - crop) / 2`` rounded down) in TEST.
* ``mirror``: a random left-right flip with probability 1/2 in *every* phase when enabled (Caffe's
  prototxts set it only in their TRAIN layers).
* ``force_color`` / ``force_gray`` decode encoded datums to 3 channels / grey; they do nothing to
  raw datums (Caffe logs an error and goes on).
* Random draws per image, in Caffe's order: mirror, then the crop's row, then its column. They come
  from the layer's own generator, seeded from cct's at setup only when a random option is on.
"""
import numpy as np

from cct import rng
from cct.errors import DataError
from cct.io.blobproto import blobproto_to_array, has_legacy_shape
from cct.kernels.data_transform import MEAN_IMAGE, MEAN_NONE, MEAN_VALUES, transform_image
from cct.log import logger
from cct.proto import caffe_pb2


def read_mean_file(path, dtype=np.float32):
    """The C x H x W mean of a .binaryproto (Caffe reads its legacy channels/height/width)."""
    from cct.io.protofiles import read_binary  # cct.io imports the layer registry: no cycle
    proto = read_binary(path, caffe_pb2.BlobProto, 'mean')
    values = blobproto_to_array(proto, dtype=np.float32)
    shape = tuple(proto.shape.dim) if not has_legacy_shape(proto) else \
        (proto.num, proto.channels, proto.height, proto.width)
    # Caffe's Blob::channels()/height()/width() are axes 1..3 of a shape padded with 1s.
    dims = (tuple(shape) + (1, 1, 1, 1))[1:4] if len(shape) <= 4 else shape[1:4]
    count = dims[0] * dims[1] * dims[2]
    return values.reshape(-1)[:count].reshape(dims).astype(dtype)


class DataTransformer:
    """Applies a layer's TransformationParameter to images.

    Args:
        param: the ``caffe_pb2.TransformationParameter``.
        phase: ``caffe_pb2.TRAIN`` or ``caffe_pb2.TEST``.
        dtype: the float type of the output.
        where: names the layer in error messages.
    """

    def __init__(self, param, phase, dtype, where):
        self.param = param
        self.phase = phase
        self.dtype = np.dtype(dtype)
        self.where = where
        self.crop_size = int(param.crop_size)
        self.scale = self.dtype.type(np.float32(param.scale))
        self.mean_image = np.zeros((0, 0, 0), self.dtype)
        self.mean_values = np.zeros(0, self.dtype)
        self.mean_mode = MEAN_NONE
        if param.force_color and param.force_gray:
            raise DataError('%s: cannot set both force_color and force_gray' % where)
        if param.HasField('mean_file'):
            if len(param.mean_value):
                raise DataError('%s: Cannot specify mean_file and mean_value at the same time'
                                % where)
            logger.info('Loading mean file from: %s', param.mean_file)
            self.mean_image = read_mean_file(param.mean_file, self.dtype)
            self.mean_mode = MEAN_IMAGE
        elif len(param.mean_value):
            self.mean_values = np.array(param.mean_value, np.float32).astype(self.dtype)
            self.mean_mode = MEAN_VALUES
        self._random_crop = self.crop_size > 0 and phase == caffe_pb2.TRAIN
        # Caffe's InitRand: a generator of its own, seeded only when some option draws from it.
        self.generator = np.random.default_rng(rng.generator().integers(2 ** 63)) \
            if param.mirror or self._random_crop else None
        self._warned_force = False

    @property
    def decode_color(self):
        """How encoded datums decode: True (3 channels), False (grey) or None (as stored)."""
        if self.param.force_color:
            return True
        if self.param.force_gray:
            return False
        return None

    def warn_force_on_raw(self):
        if (self.param.force_color or self.param.force_gray) and not self._warned_force:
            # Caffe logs this for every raw datum; once is enough to say it.
            logger.error('force_color and force_gray only for encoded datum')
            self._warned_force = True

    def output_shape(self, image, where):
        """Caffe's InferBlobShape: the C x h x w a C x H x W ``image`` transforms to."""
        channels, height, width = image.shape
        if self.crop_size and (height < self.crop_size or width < self.crop_size):
            raise DataError('%s: crop_size %d is larger than the image (%d x %d)'
                            % (where, self.crop_size, height, width))
        if self.crop_size:
            return channels, self.crop_size, self.crop_size
        return channels, height, width

    def _check(self, image, out_shape, where):
        channels, height, width = image.shape
        if channels != out_shape[0]:
            raise DataError('%s: the image has %d channels, the batch %d (the first image of '
                            'a batch sets its shape)' % (where, channels, out_shape[0]))
        if self.crop_size:
            if height < self.crop_size or width < self.crop_size:
                raise DataError('%s: crop_size %d is larger than the image (%d x %d)'
                                % (where, self.crop_size, height, width))
        elif (height, width) != tuple(out_shape[1:]):
            raise DataError('%s: the image is %d x %d x %d, the batch %d x %d x %d (all images '
                            'of a batch need one shape unless crop_size is set)'
                            % ((where,) + tuple(image.shape) + tuple(out_shape)))
        if self.mean_mode == MEAN_IMAGE and self.mean_image.shape != image.shape:
            raise DataError('%s: the mean_file %s is %d x %d x %d, the image %d x %d x %d'
                            % ((where, self.param.mean_file) + self.mean_image.shape +
                               tuple(image.shape)))
        if self.mean_mode == MEAN_VALUES and len(self.mean_values) not in (1, channels):
            raise DataError('%s: Specify either 1 mean_value or as many as channels: %d'
                            % (where, channels))

    def transform(self, image, out, where):
        """Transform one C x H x W image (uint8 or float32, any strides) into ``out`` (C x h x w).

        Args:
            image: the pixels.
            out: a C-contiguous array of this transformer's dtype.
            where: names the source and record in error messages.
        """
        self._check(image, out.shape, where)
        channels, height, width = image.shape
        mirror = bool(self.param.mirror and self.generator.integers(2))
        h_off = w_off = 0
        if self.crop_size:
            if self._random_crop:
                h_off = int(self.generator.integers(height - self.crop_size + 1))
                w_off = int(self.generator.integers(width - self.crop_size + 1))
            else:
                h_off = (height - self.crop_size) // 2
                w_off = (width - self.crop_size) // 2
        mean_values = self.mean_values
        if self.mean_mode == MEAN_VALUES and len(mean_values) == 1 and channels > 1:
            mean_values = np.repeat(mean_values, channels)
        if image.dtype not in (np.uint8, np.float32):
            image = image.astype(np.float32)
        transform_image(image, out, h_off, w_off, mirror, self.mean_image, mean_values,
                        self.mean_mode, self.scale)
