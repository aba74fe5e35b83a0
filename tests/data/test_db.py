"""LMDB and LevelDB backends: key order, commits, LMDB map growth, cursors that wrap, one handle
shared by several readers (an LMDB made again at its path is a new one), and the errors for a
missing, existing or mistaken database."""
import os
import shutil

import numpy as np
import pytest

from cct.data.db import Reader, Writer, backend_name
from cct.errors import DataError
from cct.proto import caffe_pb2


@pytest.mark.parametrize('backend', ['lmdb', 'leveldb'])
def test_round_trip_in_key_order(tmp_path, backend):
    path = tmp_path / 'db'
    keys = ['%08d_img%d.jpg' % (i, i) for i in range(25)]
    order = np.random.default_rng(0).permutation(25)
    with Writer(path, backend) as db:
        for n, i in enumerate(order):
            db.put(keys[i], b'value %d' % i)
            if n % 10 == 9:
                db.commit()
    reader = Reader(path, backend)
    assert len(reader) == 25
    assert [k.decode() for k, _ in reader.items()] == keys
    assert reader.first() == (keys[0].encode(), b'value 0')
    cursor = reader.cursor()
    seen = []
    for _ in range(30):
        cursor.ensure_started()
        seen.append(cursor.value)
        cursor.next()
        if not cursor.valid:
            cursor.seek_to_first()
    assert seen == [b'value %d' % (i % 25) for i in range(30)]
    cursor.close()
    reader.close()


def test_lmdb_map_grows_past_its_initial_size(tmp_path):
    """30 MiB of records into an environment that starts at LMDB's 10 MiB default: without the
    doubling, the first commit past 10 MiB raises lmdb.MapFullError."""
    payload = bytes(1 << 20)
    with Writer(tmp_path / 'big', 'lmdb') as db:
        for i in range(30):
            db.put('%02d' % i, payload)
            if i % 7 == 6:
                db.commit()
    reader = Reader(tmp_path / 'big', 'lmdb')
    assert len(reader) == 30


@pytest.mark.parametrize('backend', ['lmdb', 'leveldb'])
def test_two_readers_of_one_database(tmp_path, backend):
    """lmdb refuses a second environment of one path, LevelDB a second opener of its lock: the
    readers share one handle (a train and a test net may read one source)."""
    with Writer(tmp_path / 'db', backend) as db:
        db.put('a', b'1')
        db.put('b', b'2')
    first, second = Reader(tmp_path / 'db', backend), Reader(tmp_path / 'db', backend)
    assert list(first.items()) == list(second.items()) == [(b'a', b'1'), (b'b', b'2')]
    first.close()
    assert second.first() == (b'a', b'1')


def test_reading_never_writes_into_the_database_folder(tmp_path):
    with Writer(tmp_path / 'db', 'lmdb') as db:
        db.put('a', b'1')
    os.remove(tmp_path / 'db' / 'lock.mdb')
    reader = Reader(tmp_path / 'db', 'lmdb')
    assert reader.first() == (b'a', b'1')
    assert sorted(os.listdir(tmp_path / 'db')) == ['data.mdb']


@pytest.mark.parametrize('backend', ['lmdb', 'leveldb'])
def test_an_existing_database_is_never_written(tmp_path, backend):
    with Writer(tmp_path / 'db', backend) as db:
        db.put('a', b'1')
    with pytest.raises(DataError, match='it already exists'):
        Writer(tmp_path / 'db', backend)


def test_errors_name_the_path_and_the_mistake(tmp_path):
    with pytest.raises(DataError, match='LMDB database not found: .*nowhere'):
        Reader(tmp_path / 'nowhere', 'lmdb')
    (tmp_path / 'file').write_text('x')
    with pytest.raises(DataError, match='LevelDB database path is not a directory'):
        Reader(tmp_path / 'file', 'leveldb')
    with Writer(tmp_path / 'level', 'leveldb') as db:
        db.put('a', b'1')
    with pytest.raises(DataError, match='no data.mdb in it .*set backend: LEVELDB'):
        Reader(tmp_path / 'level', 'lmdb')
    with pytest.raises(DataError, match='Unknown database backend'):
        backend_name('rocksdb')
    assert backend_name(caffe_pb2.DataParameter.LMDB) == 'lmdb'
    assert backend_name('LevelDB') == 'leveldb'


def test_a_database_made_again_at_the_same_path_is_read_anew(tmp_path):
    """A Reader still open on a removed LMDB must not hand its old records to a Reader of the new
    database at that path."""
    path = tmp_path / 'db'
    with Writer(path, 'lmdb') as db:
        db.put('a', b'old')
    old = Reader(path, 'lmdb')
    assert old.first() == (b'a', b'old')
    shutil.rmtree(path)
    with Writer(path, 'lmdb') as db:
        db.put('a', b'new')
    assert Reader(path, 'lmdb').first() == (b'a', b'new')
    assert old.first() == (b'a', b'old')
