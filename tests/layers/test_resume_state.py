"""Layer resume states (Layer.resume_state, cct.solver.resume_state): a data layer rebuilt from
scratch and given the state another one had after k batches yields exactly the batches that one
yields next — Data on LMDB and LevelDB with random crops and mirrors, ImageData shuffled across
epochs, HDF5Data shuffled over files and rows — through a JSON round trip, as the resume file
stores it; and a database that changed since is a clear error."""
import json

import cv2
import h5py
import numpy as np
import pytest

import cct
from cct import rng
from cct.data.db import Writer
from cct.errors import DataError
from cct.io import parse_text
from cct.proto import caffe_pb2


def make_net(layer_text, seed=5):
    rng.set_random_seed(seed)
    return cct.Net(parse_text('layer { %s }' % layer_text, caffe_pb2.NetParameter()),
                   caffe_pb2.TRAIN)


def batches(net, count):
    out = []
    for _ in range(count):
        net.forward()
        out.append({name: net.blobs[name].data.copy() for name in net.blobs})
    return out


def assert_resumes_exactly(layer_text, name, before=3, after=5):
    """Run ``before`` batches, take the layer's state, run ``after`` more; a new net (seeded
    differently) given that state through JSON yields the same ``after`` batches."""
    first = make_net(layer_text)
    batches(first, before)
    state = json.loads(json.dumps(first.resume_state()))
    assert name in state
    expected = batches(first, after)
    second = make_net(layer_text, seed=99)
    second.set_resume_state(state, '<test>')
    got = batches(second, after)
    for mine, theirs in zip(got, expected):
        for blob in theirs:
            np.testing.assert_array_equal(mine[blob], theirs[blob])
    # And differently seeded, without the state, the batches differ: the test can tell.
    fresh = batches(make_net(layer_text, seed=99), after)
    assert any(not np.array_equal(a['data'], b['data']) for a, b in zip(fresh, expected))


def write_db(path, backend, count=11):
    gen = np.random.default_rng(0)
    with Writer(str(path), backend) as db:
        for i in range(count):
            datum = caffe_pb2.Datum(channels=1, height=6, width=5, label=i,
                                    data=gen.integers(0, 256, 30, dtype=np.uint8).tobytes())
            db.put(b'%08d' % i, datum.SerializeToString())
        db.commit()


@pytest.mark.parametrize('backend', ['LMDB', 'LEVELDB'])
def test_data_layer_goes_on_from_the_next_record(tmp_path, backend):
    write_db(tmp_path / 'db', backend.lower())
    text = ('name: "d" type: "Data" top: "data" top: "label" '
            'transform_param { crop_size: 4 mirror: true } '
            'data_param { source: "%s" batch_size: 4 backend: %s }' % (tmp_path / 'db', backend))
    assert_resumes_exactly(text, 'd')


def test_data_layer_state_names_a_record_that_is_gone(tmp_path):
    write_db(tmp_path / 'db', 'lmdb')
    text = ('name: "d" type: "Data" top: "data" top: "label" '
            'data_param { source: "%s" batch_size: 4 backend: LMDB }' % (tmp_path / 'db'))
    net = make_net(text)
    net.set_resume_state({'d': {'next_key': b'nope'.hex(), 'transform_rng': None}}, '<test>')
    with pytest.raises(DataError, match="has no record 'nope' to go on from"):
        net.forward()


def test_image_data_shuffled_goes_on_in_its_order(tmp_path):
    gen = np.random.default_rng(1)
    lines = []
    for i in range(7):
        cv2.imwrite(str(tmp_path / ('%d.png' % i)), gen.integers(0, 256, (6, 6, 3), np.uint8))
        lines.append('%d.png %d' % (i, i))
    (tmp_path / 'list.txt').write_text('\n'.join(lines) + '\n')
    text = ('name: "img" type: "ImageData" top: "data" top: "label" '
            'transform_param { crop_size: 5 mirror: true } '
            'image_data_param { source: "%s" root_folder: "%s/" batch_size: 3 shuffle: true }'
            % (tmp_path / 'list.txt', tmp_path))
    # 3 batches of 3 cross an epoch of 7 (a reshuffle) before the state is taken.
    assert_resumes_exactly(text, 'img')


def test_hdf5_data_shuffled_goes_on_from_its_file_and_row(tmp_path):
    gen = np.random.default_rng(2)
    names = []
    for f in range(3):
        name = str(tmp_path / ('part%d.h5' % f))
        with h5py.File(name, 'w') as h5:
            h5['data'] = gen.standard_normal((5, 2, 3)).astype(np.float32)
            h5['label'] = np.arange(5, dtype=np.float32) + 10 * f
        names.append(name)
    (tmp_path / 'files.txt').write_text('\n'.join(names) + '\n')
    text = ('name: "h5" type: "HDF5Data" top: "data" top: "label" '
            'hdf5_data_param { source: "%s" batch_size: 4 shuffle: true }'
            % (tmp_path / 'files.txt'))
    assert_resumes_exactly(text, 'h5', before=4, after=6)
