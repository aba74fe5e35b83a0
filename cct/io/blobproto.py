"""Conversions between numpy arrays and Caffe's BlobProto (Caffe's Blob::FromProto/ToProto).

Reading takes the double data when present, else the float data, and the legacy num/channels/height/
width dims when any is set, else ``shape``. Writing builds the packed wire bytes directly: assigning
tens of millions of floats to a repeated protobuf field one by one takes seconds, the bytes take
milliseconds.
"""
import numpy as np

from cct.errors import WeightsError
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
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


def array_to_blobproto_bytes(array, diff=None, double=False):
    """Serialized BlobProto of ``array`` (with ``shape``, never legacy dims), as Caffe writes it."""
    shape = caffe_pb2.BlobShape(dim=np.shape(array)).SerializeToString()
    out = _varint(7 << 3 | 2) + _varint(len(shape)) + shape
    if double:
        out += _packed(8, array, np.float64)
        if diff is not None:
            out += _packed(9, diff, np.float64)
    else:
        out += _packed(5, array, np.float32)
        if diff is not None:
            out += _packed(6, diff, np.float32)
    return out


def array_to_blobproto(array, diff=None):
    """pycaffe's ``caffe.io.array_to_blobproto``: a BlobProto with ``shape`` and float data."""
    return caffe_pb2.BlobProto.FromString(array_to_blobproto_bytes(np.asarray(array), diff))


def fill_blobproto(proto, array, diff=None):
    """Replace ``proto``'s contents with ``array`` (and ``diff``), fast."""
    proto.Clear()
    proto.MergeFromString(array_to_blobproto_bytes(array, diff))
    return proto
