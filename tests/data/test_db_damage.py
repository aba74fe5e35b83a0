"""Damaged datasets (cct/data/db.py, cct/data/lmdb_check.py): a truncated LMDB (SIGBUS before), an LMDB
with a damaged page (an LMDB assertion's abort, or its raw exception), and a LevelDB with a truncated
or corrupted table (silently fewer records, or plyvel's raw exception) each end in a DataError naming
the database (and the last good record where one is known). Each damaged copy is read through a Data
layer in a child process, so a crash fails the case that caused it."""
import os
import shutil

import numpy as np
import pytest

from cct.data.db import Writer
from cct.proto import caffe_pb2
from cct.testing.isolated import run_cases

RECORDS = 300

CHILD = '''
from cct.net import Net
from cct.proto import caffe_pb2

NET = """layer { name: "data" type: "Data" top: "data" top: "label"
  transform_param { crop_size: 8 } data_param { source: "%s" backend: %s batch_size: 50 } }"""

def run_case(case):
    path, backend = case
    net_param = caffe_pb2.NetParameter()
    from google.protobuf import text_format
    text_format.Parse(NET % (path, backend.upper()), net_param)
    net = Net(net_param, caffe_pb2.TRAIN)
    for _ in range(8):   # more than one pass over the records
        net.forward()
'''


def datum(i):
    side = 40 if i % 7 == 0 else 8   # every seventh record spills onto LMDB overflow pages
    pixels = np.random.default_rng(i).integers(0, 256, 3 * side * side, dtype=np.uint8)
    return caffe_pb2.Datum(channels=3, height=side, width=side, label=i % 10,
                           data=pixels.tobytes()).SerializeToString()


@pytest.fixture(scope='module')
def good_lmdb(tmp_path_factory):
    path = tmp_path_factory.mktemp('good') / 'lmdb'
    with Writer(path, 'lmdb') as db:
        for i in range(RECORDS):
            db.put('%08d' % i, datum(i))
    return path


def copy_with(source, target, change):
    shutil.copytree(source, target)
    data_file = os.path.join(target, 'data.mdb')
    with open(data_file, 'rb') as f:
        data = bytearray(f.read())
    with open(data_file, 'wb') as f:
        f.write(change(data))
    return str(target)


def zero_page(number):
    def change(data):
        data[number * 4096:(number + 1) * 4096] = bytes(4096)
        return data
    return change


def leaf_pages(path):
    """Numbers of the pages whose header says leaf (flags 0x02), read as LMDB lays pages out."""
    with open(os.path.join(path, 'data.mdb'), 'rb') as f:
        data = f.read()
    return [n for n in range(2, len(data) // 4096)
            if int.from_bytes(data[n * 4096 + 10:n * 4096 + 12], 'little') == 0x02]


def test_damaged_lmdb_is_a_clear_error(good_lmdb, tmp_path):
    assert run_cases(CHILD, [(str(good_lmdb), 'lmdb')]) == [None]
    size = os.path.getsize(good_lmdb / 'data.mdb')
    leaf = leaf_pages(good_lmdb)[1]
    cases = {
        'truncated to 3/4': (lambda data: data[:size * 3 // 4],
                             'is truncated or corrupt: %s has %d bytes, but its last page ends at '
                             'byte %d' % ('%(path)s/data.mdb', size * 3 // 4, size)),
        'truncated inside the meta pages': (lambda data: data[:100],
                                            'MDB_INVALID'),
        'a leaf page zeroed': (zero_page(leaf), 'is corrupt: page %d is not the leaf page the '
                                                'tree expects there (number 0, flags 0x0) (after '
                                                "record '" % leaf),
        'a node offset out of its page': (lambda data: data[:leaf * 4096 + 16] + b'\xff\xff' +
                                          data[leaf * 4096 + 18:],
                                          'is corrupt: page %d has a node at offset 65535, outside '
                                          'its data' % leaf),
    }
    names = list(cases)
    paths = [copy_with(good_lmdb, tmp_path / str(i), cases[name][0])
             for i, name in enumerate(names)]
    outcomes = run_cases(CHILD, [(path, 'lmdb') for path in paths])
    for name, path, outcome in zip(names, paths, outcomes):
        assert outcome is not None, name
        kind, allowed, message = outcome
        assert kind == 'DataError', (name, outcome)
        assert path in message and cases[name][1] % dict(path=path) in message, (name, message)


def test_every_page_of_an_lmdb_zeroed_in_turn(good_lmdb, tmp_path):
    """Whatever page is lost, reading ends in success (a page nothing reads: the unused meta copy)
    or a DataError: never a signal."""
    pages = os.path.getsize(good_lmdb / 'data.mdb') // 4096
    paths = [copy_with(good_lmdb, tmp_path / str(page), zero_page(page)) for page in range(pages)]
    outcomes = run_cases(CHILD, [(path, 'lmdb') for path in paths])
    assert all(outcome is None or outcome[0] == 'DataError' for outcome in outcomes), outcomes
    assert sum(outcome is not None for outcome in outcomes) >= pages - 2


@pytest.fixture(scope='module')
def good_leveldb(tmp_path_factory):
    """A LevelDB whose records sit in a table file (.ldb), as in a dataset written long ago."""
    plyvel = pytest.importorskip('plyvel')
    path = str(tmp_path_factory.mktemp('good') / 'leveldb')
    db = plyvel.DB(path, create_if_missing=True, write_buffer_size=4096)
    for i in range(RECORDS):
        db.put(b'%08d' % i, datum(i))
    db.compact_range()
    db.close()
    return path


def change_table(source, target, change):
    shutil.copytree(source, target)
    table = max((name for name in os.listdir(target) if name.endswith('.ldb')),
                key=lambda name: os.path.getsize(os.path.join(target, name)))
    with open(os.path.join(target, table), 'rb') as f:
        data = bytearray(f.read())
    with open(os.path.join(target, table), 'wb') as f:
        f.write(change(data))
    return str(target), int(table[:-4])


def test_damaged_leveldb_is_a_clear_error(good_leveldb, tmp_path):
    def flip(data):
        data[len(data) // 3] ^= 0xff
        return data
    truncated, table = change_table(good_leveldb, tmp_path / 'truncated',
                                    lambda data: data[:len(data) // 2])
    flipped, _ = change_table(good_leveldb, tmp_path / 'flipped', flip)
    outcomes = run_cases(CHILD, [(truncated, 'leveldb'), (flipped, 'leveldb'),
                                 (good_leveldb, 'leveldb')])
    assert outcomes[0][0] == 'DataError' and (
        'LevelDB database %s is truncated or corrupt: table %06d: ' % (truncated, table)
        in outcomes[0][2]), outcomes[0]
    assert outcomes[1][0] == 'DataError' and (
        'LevelDB database %s is corrupt: reading failed after record ' % flipped
        in outcomes[1][2]) and 'checksum mismatch' in outcomes[1][2], outcomes[1]
    assert outcomes[2] is None
