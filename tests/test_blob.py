"""Blob (cct/blob.py) at the limits: a shape whose count overflows int64 is refused (it wrapped to a
count of 0), and an allocation the machine cannot make is an OutOfMemoryError (still a MemoryError)
that says how many bytes were asked for."""
import numpy as np
import pytest

from cct.blob import Blob
from cct.errors import CctError, OutOfMemoryError

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
