"""HDF5Data and HDF5Output: a round trip through HDF5Output, several files read in turn with
wrap-around, shuffled files and rows, integer datasets, and the errors (missing dataset,
transform_param, a second HDF5Output batch)."""
import h5py
import numpy as np
import pytest

import cct
from cct import rng
from cct.errors import DataError
from cct.io import parse_text
from cct.proto import caffe_pb2


def net_from(text, phase=caffe_pb2.TEST, dtype=np.float32):
    return cct.Net(parse_text(text, caffe_pb2.NetParameter()), phase, dtype=dtype)


def write_h5(path, **datasets):
    with h5py.File(path, 'w') as f:
        for name, values in datasets.items():
            f[name] = values
    return str(path)


def hdf5_net(source, batch_size, shuffle=False, tops=('data', 'label'), extra=''):
    return net_from('''layer { name: "h5" type: "HDF5Data" %s %s
                               hdf5_data_param { source: "%s" batch_size: %d shuffle: %s } }'''
                    % (' '.join('top: "%s"' % t for t in tops), extra, source, batch_size,
                       'true' if shuffle else 'false'))


def test_output_then_input_round_trip(tmp_path):
    gen = np.random.default_rng(0)
    data = gen.standard_normal((5, 2, 3, 4)).astype(np.float32)
    labels = np.arange(5, dtype=np.float32)
    writer = net_from('''
        layer { name: "in" type: "Input" top: "data" top: "label"
                input_param { shape { dim: 5 dim: 2 dim: 3 dim: 4 } shape { dim: 5 } } }
        layer { name: "out" type: "HDF5Output" bottom: "data" bottom: "label"
                hdf5_output_param { file_name: "%s" } }''' % (tmp_path / 'out.h5'))
    writer.blobs['data'].data[...] = data
    writer.blobs['label'].data[...] = labels
    writer.forward()
    with h5py.File(tmp_path / 'out.h5', 'r') as f:
        assert f['data'].shape == (5, 2, 3, 4) and f['label'].shape == (5, 1, 1, 1)
        assert f['data'].dtype == np.float32
    with pytest.raises(DataError, match='already holds a "data" dataset; HDF5Output writes one '
                                        'batch per file'):
        writer.forward()
    (tmp_path / 'list.txt').write_text(str(tmp_path / 'out.h5') + '\n')
    reader = hdf5_net(tmp_path / 'list.txt', 5)
    assert reader.blobs['data'].shape == (5, 2, 3, 4)
    assert reader.blobs['label'].shape == (5, 1, 1, 1)
    reader.forward()
    np.testing.assert_array_equal(reader.blobs['data'].data, data)
    np.testing.assert_array_equal(reader.blobs['label'].data[:, 0, 0, 0], labels)


def test_files_in_turn_with_wrap_and_integer_datasets(tmp_path):
    first = write_h5(tmp_path / 'a.h5', data=np.arange(6, dtype=np.float64).reshape(3, 2),
                     label=np.arange(3, dtype=np.int32))
    second = write_h5(tmp_path / 'b.h5', data=np.arange(100, 104, dtype=np.float64).reshape(2, 2),
                      label=np.arange(3, 5, dtype=np.uint8))
    (tmp_path / 'list.txt').write_text('%s\n\n  %s\n' % (first, second))
    net = hdf5_net(tmp_path / 'list.txt', 4)
    assert net.blobs['label'].shape == (4,)
    net.forward()
    np.testing.assert_array_equal(net.blobs['label'].data, [0, 1, 2, 3])
    np.testing.assert_array_equal(net.blobs['data'].data[3], [100, 101])
    net.forward()
    np.testing.assert_array_equal(net.blobs['label'].data, [4, 0, 1, 2])


def test_shuffle_keeps_rows_with_their_labels_and_files_apart(tmp_path):
    names = []
    for f in range(3):
        rows = np.arange(10 * f, 10 * f + 10, dtype=np.float32)
        names.append(write_h5(tmp_path / ('%d.h5' % f), data=rows[:, None] * 2, label=rows))
    (tmp_path / 'list.txt').write_text('\n'.join(names))
    rng.set_random_seed(4)
    net = hdf5_net(tmp_path / 'list.txt', 10, shuffle=True)
    seen = []
    for _ in range(3):
        net.forward()
        labels = net.blobs['label'].data.copy()
        np.testing.assert_array_equal(net.blobs['data'].data[:, 0], labels * 2)
        assert len({int(v) // 10 for v in labels}) == 1  # one file per batch of 10
        seen.append(labels)
    assert sorted(np.concatenate(seen).astype(int)) == list(range(30))
    assert any(not np.array_equal(s, np.sort(s)) for s in seen)


def test_errors(tmp_path):
    name = write_h5(tmp_path / 'a.h5', data=np.zeros((3, 2)), other=np.zeros(3))
    (tmp_path / 'list.txt').write_text(name)
    with pytest.raises(DataError, match='Failed to find HDF5 dataset label in .*a.h5'):
        hdf5_net(tmp_path / 'list.txt', 2)
    with pytest.raises(DataError, match='HDF5Data does not transform data'):
        hdf5_net(tmp_path / 'list.txt', 2, tops=('data',), extra='transform_param { scale: 2 }')
    with pytest.raises(DataError, match='Failed to open source file: .*missing.txt'):
        hdf5_net(tmp_path / 'missing.txt', 2)
    (tmp_path / 'bad.txt').write_text(str(tmp_path / 'nope.h5'))
    with pytest.raises(DataError, match='Failed opening HDF5 file: .*nope.h5'):
        hdf5_net(tmp_path / 'bad.txt', 2)
    name = write_h5(tmp_path / 'b.h5', data=np.zeros((3, 2)), label=np.zeros(4))
    (tmp_path / 'list2.txt').write_text(name)
    with pytest.raises(DataError, match='dataset data has 3 rows, dataset label has 4'):
        hdf5_net(tmp_path / 'list2.txt', 2)
