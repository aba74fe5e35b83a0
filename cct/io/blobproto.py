"""Conversions between numpy arrays and Caffe's BlobProto (Caffe's Blob::FromProto/ToProto).

Reading takes the double data when present, else the float data, and the legacy num/channels/height/
width dims when any is set, else ``shape``. Writing builds the packed wire bytes directly: assigning
tens of millions of floats to a repeated protobuf field one by one takes seconds, the bytes take
milliseconds. ``read_blobproto``/``write_blobproto`` handle whole ``.binaryproto`` files (mean images).
"""
import numpy as np

from cct.errors import ParseError, WeightsError
from cct.proto import caffe_pb2

_LEGACY = ('num', 'channels', 'height', 'width')


def has_legacy_shape(proto):
    return any(proto.HasField(f) for f in _LEGACY)


def proto_shape(proto):
    """The blob shape a BlobProto describes (legacy 4-D dims win when any is set)."""
    if has_legacy_shape(proto):
        return tuple(getattr(proto, f) for f in _LEGACY)
    return tuple(proto.shape.dim)


def blobproto_to_array(proto, return_diff=False, dtype=np.float32):
    """The data (or diff) of ``proto`` as an array of its shape."""
    shape = proto_shape(proto)
    values = (proto.double_diff if len(proto.double_diff) else proto.diff) if return_diff else \
        (proto.double_data if len(proto.double_data) else proto.data)
    array = np.asarray(values, dtype=dtype)
    count = int(np.prod(shape, dtype=np.int64))
    if array.size != count:
        raise WeightsError('BlobProto holds %d values but its shape %s needs %d'
                           % (array.size, shape, count))
    return array.reshape(shape)


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _packed(field_number, array, dtype):
    payload = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder('<')).tobytes()
    if not payload:
        return b''  # protobuf writes nothing for an empty repeated field
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


def _legacy_dims(shape):
    if len(shape) > 4:
        raise ValueError('legacy num/channels/height/width dims hold at most 4 axes, got shape %s'
                         % (tuple(shape),))
    return (1,) * (4 - len(shape)) + tuple(int(d) for d in shape)


def array_to_blobproto_bytes(array, diff=None, double=False, legacy=False):
    """Serialized BlobProto of ``array``, as Caffe writes it.

    Args:
        array: the data.
        diff: optional gradient of the same shape.
        double: write ``double_data``/``double_diff`` (Caffe's Blob<double>) instead of floats.
        legacy: describe the shape with the 4-D num/channels/height/width fields (leading 1s), as
            compute_image_mean's mean files do, instead of ``shape``.
    """
    # Fields go in field-number order, as protobuf (and so Caffe) serializes them: the bytes are
    # the same as Caffe's.
    out = b''
    if legacy:
        out += b''.join(_varint(field << 3) + _varint(dim)
                        for field, dim in zip((1, 2, 3, 4), _legacy_dims(np.shape(array))))
    if not double:
        out += _packed(5, array, np.float32)
        if diff is not None:
            out += _packed(6, diff, np.float32)
    if not legacy:
        shape = caffe_pb2.BlobShape(dim=np.shape(array)).SerializeToString()
        out += _varint(7 << 3 | 2) + _varint(len(shape)) + shape
    if double:
        out += _packed(8, array, np.float64)
        if diff is not None:
            out += _packed(9, diff, np.float64)
    return out


def array_to_blobproto(array, diff=None):
    """pycaffe's ``caffe.io.array_to_blobproto``: a BlobProto with ``shape`` and float data."""
    return caffe_pb2.BlobProto.FromString(array_to_blobproto_bytes(np.asarray(array), diff))


def fill_blobproto(proto, array, diff=None, double=False):
    """Replace ``proto``'s contents with ``array`` (and ``diff``), fast; ``double`` writes
    double_data as Caffe's Blob<double> does."""
    proto.Clear()
    proto.MergeFromString(array_to_blobproto_bytes(array, diff, double))
    return proto


def read_blobproto(path, return_diff=False, dtype=np.float32):
    """The array stored in a ``.binaryproto`` file (a mean image, say), in its shape.

    Legacy num/channels/height/width files come back 4-D, as Caffe's Blob::FromProto reads them.
    """
    from cct.io.protofiles import read_binary
    proto = read_binary(path, caffe_pb2.BlobProto, 'binaryproto')
    try:
        return blobproto_to_array(proto, return_diff, dtype)
    except WeightsError as e:
        raise ParseError('%s: %s' % (path, e)) from None


def write_blobproto(path, array, diff=None, double=False, legacy=False):
    """Write ``array`` as a ``.binaryproto`` file (see ``array_to_blobproto_bytes`` for the flags)."""
    from cct.io.protofiles import write_bytes
    write_bytes(array_to_blobproto_bytes(np.asarray(array), diff, double, legacy), path)
