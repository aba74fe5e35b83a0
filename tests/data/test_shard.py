"""Data sharding across training processes (cct.data.shard, Caffe's multi-GPU Skip): in TRAIN,
worker r of W reads the records i with i mod W == r, counted on across epochs, in Data, ImageData
and HDF5Data; TEST layers read everything."""
import cv2
import h5py
import numpy as np
import pytest

import cct
from cct import runtime
from cct.data.db import Writer
from cct.data.shard import Shard
from cct.io import parse_text
from cct.proto import caffe_pb2

RECORDS = 7


@pytest.fixture(autouse=True)
def _single_process_rank():
    yield
    runtime.set_solver_count(1)
    runtime.set_solver_rank(0)


def labels(make_net, rank, count, batches, batch_size, phase=caffe_pb2.TRAIN):
    runtime.set_solver_count(count)
    runtime.set_solver_rank(rank)
    net = make_net(batch_size, phase)
    seen = []
    for _ in range(batches):
        net.forward()
        seen.extend(int(v) for v in net.blobs['label'].data)
    return seen


@pytest.fixture
def lmdb_net(tmp_path):
    with Writer(str(tmp_path / 'db'), 'lmdb') as db:
        for i in range(RECORDS):
            datum = caffe_pb2.Datum(channels=1, height=1, width=1, data=bytes([i]), label=i)
            db.put('%08d' % i, datum.SerializeToString())

    def make(batch_size, phase):
        text = '''layer { name: "d" type: "Data" top: "data" top: "label"
                          data_param { source: "%s" batch_size: %d backend: LMDB } }''' % (
            tmp_path / 'db', batch_size)
        return cct.Net(parse_text(text, caffe_pb2.NetParameter()), phase)
    return make


@pytest.fixture
def image_net(tmp_path):
    lines = []
    for i in range(RECORDS):
        cv2.imwrite(str(tmp_path / ('%d.png' % i)), np.full((2, 2, 3), i, np.uint8))
        lines.append('%d.png %d' % (i, i))
    (tmp_path / 'list.txt').write_text('\n'.join(lines) + '\n')

    def make(batch_size, phase):
        text = '''layer { name: "i" type: "ImageData" top: "data" top: "label"
                          image_data_param { source: "%s/list.txt" root_folder: "%s/"
                                             batch_size: %d } }''' % (tmp_path, tmp_path,
                                                                      batch_size)
        return cct.Net(parse_text(text, caffe_pb2.NetParameter()), phase)
    return make


@pytest.fixture
def hdf5_net(tmp_path):
    # Two files (4 + 3 rows): the count goes on across files, as Caffe's offset_ does.
    names = []
    for index, rows in enumerate((range(0, 4), range(4, RECORDS))):
        name = str(tmp_path / ('part%d.h5' % index))
        with h5py.File(name, 'w') as f:
            f['data'] = np.array(list(rows), np.float32).reshape(-1, 1)
            f['label'] = np.array(list(rows), np.float32)
        names.append(name)
    (tmp_path / 'files.txt').write_text('\n'.join(names) + '\n')

    def make(batch_size, phase):
        text = '''layer { name: "h" type: "HDF5Data" top: "data" top: "label"
                          hdf5_data_param { source: "%s/files.txt" batch_size: %d } }''' % (
            tmp_path, batch_size)
        return cct.Net(parse_text(text, caffe_pb2.NetParameter()), phase)
    return make


@pytest.mark.parametrize('source', ['lmdb_net', 'image_net', 'hdf5_net'])
def test_workers_split_the_records_and_count_on_across_epochs(source, request):
    make = request.getfixturevalue(source)
    assert labels(make, 0, 1, 2, 4) == [0, 1, 2, 3, 4, 5, 6, 0]
    # Offsets 0..13 over two passes of 7 records: rank 0 of 2 takes the even offsets.
    assert labels(make, 0, 2, 2, 4) == [0, 2, 4, 6, 1, 3, 5, 0]
    assert labels(make, 1, 2, 2, 4) == [1, 3, 5, 0, 2, 4, 6, 1]
    assert labels(make, 2, 3, 1, 4) == [2, 5, 1, 4]
    assert labels(make, 1, 2, 1, 4, caffe_pb2.TEST) == [0, 1, 2, 3]


def test_shard_rejects_a_rank_outside_the_count():
    with pytest.raises(ValueError, match='rank must lie'):
        Shard(2, 2)
