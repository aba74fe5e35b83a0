"""Caffe's Datum records (caffe.proto, util/io.cpp): building them as Caffe's tools write them and
turning them back into C x H x W pixel arrays.

A Datum holds one image and its label in one of three ways: raw uint8 ``data`` in C x H x W order
(BGR when OpenCV read it), ``float_data`` (when ``data`` is empty), or with ``encoded: true`` the
bytes of an image file (JPEG, PNG...), whose channels/height/width fields are left unset by Caffe.
"""
import numpy as np
from google.protobuf import message as _message

from cct.data import images
from cct.errors import DataError
from cct.proto import caffe_pb2


def parse_datum(value, where):
    """Parse one database record as a Datum; ``where`` names the source and key in errors."""
    try:
        return caffe_pb2.Datum.FromString(value)
    except (_message.DecodeError, RuntimeError, ValueError) as e:
        raise DataError('%s: corrupt record, not a Datum (%s)' % (where, e)) from None


def datum_to_image(datum, where, color=None):
    """The pixels of ``datum`` as a C x H x W array (uint8 for raw and encoded data, float32 for
    ``float_data``); a view into the record or the decoded image where possible.

    Args:
        datum: a ``caffe_pb2.Datum``.
        where: names the source and key in error messages.
        color: for encoded datums: True decodes to 3 channels, False to grey, None keeps the
            file's channels (Caffe's DecodeDatumToCVMatNative).
    """
    if datum.encoded:
        image = images.decode_image(datum.data, color)
        if image is None:
            raise DataError('%s: could not decode the encoded image (%d bytes)'
                            % (where, len(datum.data)))
        if image.dtype != np.uint8:
            raise DataError('%s: image data type must be unsigned byte, got %s'
                            % (where, image.dtype))
        return images.to_chw(image)
    shape = (datum.channels, datum.height, datum.width)
    count = datum.channels * datum.height * datum.width
    if datum.channels <= 0 or datum.height <= 0 or datum.width <= 0:
        raise DataError('%s: Datum has shape %d x %d x %d; channels, height and width must be '
                        'positive' % ((where,) + shape))
    if len(datum.data):
        if len(datum.data) != count:
            raise DataError('%s: Datum holds %d data bytes, its shape %d x %d x %d needs %d'
                            % ((where, len(datum.data)) + shape + (count,)))
        return np.frombuffer(datum.data, np.uint8).reshape(shape)
    if len(datum.float_data) != count:
        raise DataError('%s: Datum holds %d float_data values, its shape %d x %d x %d needs %d'
                        % ((where, len(datum.float_data)) + shape + (count,)))
    return np.fromiter(datum.float_data, np.float32, count).reshape(shape)


def image_to_datum(image, label, encoded_as=''):
    """A Datum from an OpenCV image (H x W [x C] uint8), as convert_imageset writes it.

    Args:
        image: the pixels (BGR or grey).
        label: the integer label.
        encoded_as: '' stores raw C x H x W bytes (Caffe's CVMatToDatum, which also sets
            ``encoded: false``); an extension such as 'png' or 'jpg' stores cv::imencode's bytes.
    """
    datum = caffe_pb2.Datum()
    if encoded_as:
        datum.data = images.encode_image(image, encoded_as)
        datum.label = label
        datum.encoded = True
        return datum
    if image.dtype != np.uint8:
        raise DataError('Image data type must be unsigned byte, got %s' % image.dtype)
    chw = images.to_chw(image)
    datum.channels, datum.height, datum.width = chw.shape
    datum.data = np.ascontiguousarray(chw).tobytes()
    datum.encoded = False
    datum.label = label
    return datum


def file_to_datum(data, label):
    """Caffe's ReadFileToDatum: an image file's own bytes as an encoded Datum (no dimensions)."""
    datum = caffe_pb2.Datum()
    datum.data = data
    datum.label = label
    datum.encoded = True
    return datum


def raw_datum_bytes(pixels, label):
    """The serialized Datum of a C x H x W uint8 array and a label, as convert_mnist_data and
    convert_cifar_data write it (channels, height, width, data, label; no ``encoded`` field)."""
    datum = caffe_pb2.Datum(channels=pixels.shape[0], height=pixels.shape[1],
                            width=pixels.shape[2], data=np.ascontiguousarray(pixels).tobytes(),
                            label=int(label))
    return datum.SerializeToString()
