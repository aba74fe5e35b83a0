"""Blob (cct/blob.py): caller-provided buffers (Caffe's set_cpu_data), which the guarded-buffer tests
of the kernels rely on; and the limits: a shape whose count overflows int64 is refused (it wrapped to a
count of 0), and an allocation the machine cannot make is an OutOfMemoryError (still a MemoryError)
that says how many bytes were asked for."""
import numpy as np
import pytest

from cct.blob import Blob
from cct.errors import CctError, OutOfMemoryError


def test_use_data_buffer_makes_the_buffer_the_blobs_data():
    blob = Blob(2, 3, dtype=np.float64)
    flat = np.arange(8, dtype=np.float64)
    blob.use_data_buffer(flat)
    np.testing.assert_array_equal(blob.data, np.arange(6).reshape(2, 3))
    blob.data[1, 2] = -1
    assert flat[5] == -1 and flat[6] == 6


def test_use_diff_buffer_makes_the_buffer_the_blobs_diff():
    blob = Blob(2, 2, dtype=np.float32)
    flat = np.zeros(4, np.float32)
    blob.use_diff_buffer(flat)
    blob.diff[...] = 3
    assert (flat == 3).all()


@pytest.mark.parametrize('flat', [np.zeros(5), np.zeros((2, 3)), np.zeros(6, np.float32)])
def test_buffers_of_the_wrong_size_shape_or_dtype_are_refused(flat):
    blob = Blob(2, 3, dtype=np.float64)
    with pytest.raises(ValueError, match='data buffer for blob 2 3'):
        blob.use_data_buffer(flat)
    with pytest.raises(ValueError, match='diff buffer for blob 2 3'):
        blob.use_diff_buffer(flat)


# More bytes than a 64-bit address space maps (2**47 bytes of user space on x86-64): no
# overcommit setting lets this allocation succeed.
HUGE = (1000000000, 3, 227, 227)


def test_count_beyond_int64_is_refused():
    with pytest.raises(ValueError, match=r'blob dimensions \(4294967296, 4294967296, 4294967296, '
                                         r'8\) hold \d+ values, more than a 64-bit count holds'):
        Blob(4294967296, 4294967296, 4294967296, 8)
    blob = Blob(2, 3)
    with pytest.raises(ValueError, match='more than a 64-bit count'):
        blob.reshape(2 ** 32, 2 ** 32)
    assert blob.shape == (2, 3) and blob.count == 6


def test_an_impossible_allocation_says_how_many_bytes():
    nbytes = int(np.prod(HUGE, dtype=object)) * 4
    blob = Blob(2, 3)
    with pytest.raises(OutOfMemoryError) as raised:
        blob.reshape(HUGE)
    assert isinstance(raised.value, (MemoryError, CctError))
    assert raised.value.nbytes == nbytes and raised.value.blob is blob
    assert str(raised.value).startswith('cannot allocate %d bytes (' % nbytes)
    assert 'for a blob of shape 1000000000 3 227 227 (154587000000000)' in str(raised.value)
    assert blob.shape == (2, 3) and blob.data.shape == (2, 3)   # unchanged by the failure
