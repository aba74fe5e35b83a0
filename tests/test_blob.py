"""Blob (cct/blob.py): caller-provided buffers (Caffe's set_cpu_data), which the guarded-buffer tests
of the kernels rely on."""
import numpy as np
import pytest

from cct.blob import Blob


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
