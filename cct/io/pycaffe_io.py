"""pycaffe's ``caffe.io`` (python/caffe/io.py): the input Transformer and array <-> protobuf helpers.

``Transformer.preprocess`` turns an H x W x K image into a K x H x W net input in this order: cast to
float32, resize to the input's H x W if different, transpose, channel swap, x raw_scale, - mean,
x input_scale; ``deprocess`` undoes them in reverse. ``raw_scale`` applies *before* the mean and
``input_scale`` *after*: pycaffe's ImageNet recipe is raw_scale 255 with a mean in [0, 255].
"""
import numpy as np

from cct.io.blobproto import array_to_blobproto, blobproto_to_array
from cct.io.images import resize_image
from cct.proto import caffe_pb2


def arraylist_to_blobprotovector_str(arraylist):
    """Serialize a list of arrays as a BlobProtoVector (bytes)."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend([array_to_blobproto(arr) for arr in arraylist])
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(serialized):
    """The arrays of a serialized BlobProtoVector."""
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(serialized)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr, label=None):
    """A Datum holding a C x H x W array: uint8 arrays as ``data`` bytes, others as ``float_data``.

    Args:
        arr: 3-D array (channels, height, width).
        label: optional integer label.
    """
    if arr.ndim != 3:
        raise ValueError('Incorrect array shape: array_to_datum needs a 3-D (C, H, W) array, got '
                         'shape %s' % (arr.shape,))
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = arr.shape
    if arr.dtype == np.uint8:
        datum.data = np.ascontiguousarray(arr).tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = label
    return datum


def datum_to_array(datum):
    """The C x H x W array of a Datum (uint8 from ``data``, float64 from ``float_data``); the label
    is not returned (read ``datum.label``)."""
    if datum.encoded:
        raise ValueError('datum_to_array: the Datum holds an encoded image (encoded: true); decode '
                         'its data bytes as an image file instead')
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(
            datum.channels, datum.height, datum.width).copy()
    return np.array(datum.float_data).astype(float).reshape(
        datum.channels, datum.height, datum.width)


class Transformer:
    """Turns images into net inputs and back, per input blob.

    Args:
        inputs: {input blob name: its shape (N, K, H, W)}, e.g.
            ``{'data': net.blobs['data'].data.shape}``.
    """

    def __init__(self, inputs):
        self.inputs = {name: tuple(int(d) for d in shape) for name, shape in inputs.items()}
        self.transpose = {}
        self.channel_swap = {}
        self.raw_scale = {}
        self.mean = {}
        self.input_scale = {}

    def _check_input(self, in_):
        if in_ not in self.inputs:
            raise ValueError('{} is not one of the net inputs: {}'.format(in_, self.inputs))

    def preprocess(self, in_, data):
        """Format an H' x W' x K image for input ``in_``: float32, resize, transpose, channel
        swap, raw scale, mean subtraction, input scale. Returns the K x H x W array."""
        self._check_input(in_)
        # pycaffe casts with copy=False and then scales in place, which rewrites a caller's float32
        # image of the input's size; cct always works on a copy.
        caffe_in = data.astype(np.float32)
        transpose = self.transpose.get(in_)
        channel_swap = self.channel_swap.get(in_)
        raw_scale = self.raw_scale.get(in_)
        mean = self.mean.get(in_)
        input_scale = self.input_scale.get(in_)
        in_dims = self.inputs[in_][2:]
        if tuple(caffe_in.shape[:2]) != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        if transpose is not None:
            caffe_in = caffe_in.transpose(transpose)
        if channel_swap is not None:
            caffe_in = caffe_in[channel_swap, :, :]
        if raw_scale is not None:
            caffe_in *= raw_scale
        if mean is not None:
            caffe_in -= mean
        if input_scale is not None:
            caffe_in *= input_scale
        return caffe_in

    def deprocess(self, in_, data):
        """Invert ``preprocess`` (except the resize); ``data`` is squeezed first."""
        self._check_input(in_)
        decaf_in = data.copy().squeeze()
        transpose = self.transpose.get(in_)
        channel_swap = self.channel_swap.get(in_)
        raw_scale = self.raw_scale.get(in_)
        mean = self.mean.get(in_)
        input_scale = self.input_scale.get(in_)
        if input_scale is not None:
            decaf_in /= input_scale
        if mean is not None:
            decaf_in += mean
        if raw_scale is not None:
            decaf_in /= raw_scale
        if channel_swap is not None:
            decaf_in = decaf_in[np.argsort(channel_swap), :, :]
        if transpose is not None:
            decaf_in = decaf_in.transpose(np.argsort(transpose))
        return decaf_in

    def set_transpose(self, in_, order):
        """Set the axis order, e.g. (2, 0, 1) for H x W x K images into K x H x W blobs."""
        self._check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise ValueError('Transpose order needs to have the same number of dimensions as the '
                             'input (%d), got %s' % (len(self.inputs[in_]) - 1, tuple(order)))
        self.transpose[in_] = order

    def set_channel_swap(self, in_, order):
        """Set the channel order, e.g. (2, 1, 0) for RGB -> BGR. Applies after the transpose,
        so channels are the first axis."""
        self._check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise ValueError('Channel swap needs to have the same number of dimensions as the '
                             'input channels (%d), got %s' % (self.inputs[in_][1], tuple(order)))
        self.channel_swap[in_] = order

    def set_raw_scale(self, in_, scale):
        """Scale raw inputs before the mean: 255 for models trained on [0, 255] pixels, since
        ``load_image`` gives [0, 1]."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        """Set the mean to subtract: a per-channel vector (K,) or an elementwise K x H x W (or
        H x W) array, resized to the input's H x W when it differs."""
        self._check_input(in_)
        mean = np.asarray(mean)
        if mean.ndim == 1:
            if mean.shape[0] != self.inputs[in_][1]:
                raise ValueError('Mean channels incompatible with input: mean has %d, input %r '
                                 'has %d' % (mean.shape[0], in_, self.inputs[in_][1]))
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if mean.ndim == 2:
                mean = mean[np.newaxis]
            if mean.ndim != 3:
                raise ValueError('Mean shape invalid: %s (expected (K,), (H, W) or (K, H, W))'
                                 % (mean.shape,))
            in_shape = self.inputs[in_][1:]
            if mean.shape != in_shape:
                m_min, m_max = mean.min(), mean.max()
                normal_mean = (mean - m_min) / (m_max - m_min)
                mean = resize_image(normal_mean.transpose((1, 2, 0)), in_shape[1:]).transpose(
                    (2, 0, 1)) * (m_max - m_min) + m_min
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        """Scale preprocessed inputs after the mean subtraction."""
        self._check_input(in_)
        self.input_scale[in_] = scale
