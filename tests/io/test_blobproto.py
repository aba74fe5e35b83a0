"""BlobProto conversions and .binaryproto files (cct/io/blobproto.py): legacy num/channels/height/width
or ``shape``, float or double, data and diff; the fast writer's bytes are exactly what protobuf itself
serializes, and files written through protobuf's own API read back."""
import numpy as np
import pytest

from cct.errors import ParseError, WeightsError
from cct.io import (array_to_blobproto, blobproto_to_array, fill_blobproto, read_blobproto,
                    write_blobproto)
from cct.io.blobproto import array_to_blobproto_bytes, proto_shape
from cct.proto import caffe_pb2

MEAN = np.arange(3 * 4 * 5, dtype=np.float32).reshape(1, 3, 4, 5) / 7


def test_writer_bytes_equal_protobufs_own_serialization():
    diff = -MEAN
    expected = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=MEAN.shape),
                                   data=MEAN.ravel().tolist(), diff=diff.ravel().tolist())
    assert array_to_blobproto_bytes(MEAN, diff) == expected.SerializeToString()
    expected = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=(2, 3)),
                                   double_data=np.linspace(0, 1, 6).tolist())
    assert array_to_blobproto_bytes(np.linspace(0, 1, 6).reshape(2, 3), double=True) == \
        expected.SerializeToString()
    expected = caffe_pb2.BlobProto(num=1, channels=3, height=4, width=5,
                                   data=MEAN.ravel().tolist())
    assert array_to_blobproto_bytes(MEAN[0], legacy=True) == expected.SerializeToString()


def test_mean_file_written_by_protobuf_with_legacy_dims_reads_4d(tmp_path):
    """compute_image_mean writes (1, C, H, W) in the legacy fields."""
    proto = caffe_pb2.BlobProto(num=1, channels=3, height=4, width=5, data=MEAN.ravel().tolist())
    path = tmp_path / 'mean.binaryproto'
    path.write_bytes(proto.SerializeToString())
    mean = read_blobproto(str(path))
    assert mean.shape == (1, 3, 4, 5) and mean.dtype == np.float32
    np.testing.assert_array_equal(mean, MEAN)


def test_legacy_dims_win_over_shape_and_zero_dims_count():
    proto = caffe_pb2.BlobProto(num=2, channels=1, height=1, width=3,
                                shape=caffe_pb2.BlobShape(dim=[6]), data=np.arange(6.0).tolist())
    assert proto_shape(proto) == (2, 1, 1, 3)
    assert blobproto_to_array(proto).shape == (2, 1, 1, 3)
    # Any legacy field present makes all four count; unset ones are 0.
    assert proto_shape(caffe_pb2.BlobProto(width=3)) == (0, 0, 0, 3)


def test_double_data_is_preferred_and_kept_exact():
    values = np.array([1 / 3, 2 / 3, 1e-300])
    proto = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[3]), double_data=values.tolist(),
                                data=[9, 9, 9])
    np.testing.assert_array_equal(blobproto_to_array(proto, dtype=np.float64), values)
    proto.double_diff.extend([4, 5, 6])
    proto.diff.extend([7, 8, 9])
    np.testing.assert_array_equal(blobproto_to_array(proto, return_diff=True), [4, 5, 6])


@pytest.mark.parametrize('double', [False, True])
@pytest.mark.parametrize('legacy', [False, True])
def test_binaryproto_write_then_read(tmp_path, double, legacy):
    array = np.random.default_rng(1).standard_normal((3, 4, 5))
    path = str(tmp_path / 'blob.binaryproto')
    write_blobproto(path, array, diff=2 * array, double=double, legacy=legacy)
    dtype = np.float64 if double else np.float32
    expected_shape = (1, 3, 4, 5) if legacy else (3, 4, 5)
    data = read_blobproto(path, dtype=np.float64)
    assert data.shape == expected_shape
    np.testing.assert_array_equal(data, array.astype(dtype).reshape(expected_shape))
    diff = read_blobproto(path, return_diff=True, dtype=np.float64)
    np.testing.assert_array_equal(diff, (2 * array).astype(dtype).reshape(expected_shape))
    proto = caffe_pb2.BlobProto.FromString(open(path, 'rb').read())
    assert proto.HasField('num') == legacy and proto.HasField('shape') == (not legacy)
    assert (len(proto.double_data) > 0) == double and (len(proto.data) > 0) == (not double)


def test_legacy_dims_refuse_more_than_four_axes(tmp_path):
    with pytest.raises(ValueError, match='at most 4 axes'):
        write_blobproto(str(tmp_path / 'x.binaryproto'), np.zeros((1, 2, 3, 4, 5)), legacy=True)


def test_count_mismatch_and_bad_files(tmp_path):
    proto = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[2, 2]), data=[1, 2, 3])
    with pytest.raises(WeightsError, match=r'holds 3 values but its shape \(2, 2\) needs 4'):
        blobproto_to_array(proto)
    path = tmp_path / 'short.binaryproto'
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ParseError, match='short.binaryproto: .*holds 3 values'):
        read_blobproto(str(path))
    path.write_bytes(array_to_blobproto_bytes(MEAN)[:-7])
    with pytest.raises(ParseError, match='short.binaryproto: not a valid binary BlobProto'):
        read_blobproto(str(path))


def test_pycaffe_array_to_blobproto_and_fill():
    proto = array_to_blobproto(MEAN)
    assert tuple(proto.shape.dim) == MEAN.shape
    np.testing.assert_array_equal(blobproto_to_array(proto), MEAN)
    fill_blobproto(proto, np.ones((2, 2)), double=True)
    assert not len(proto.data) and list(proto.double_data) == [1, 1, 1, 1]
    assert tuple(proto.shape.dim) == (2, 2)
