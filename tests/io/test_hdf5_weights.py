"""cct.io.hdf5: Caffe's .caffemodel.h5 layout with shared params (only owners written; a missing
dataset is fine only where the reading net shares that param), shape errors, and float64 nets."""
import h5py
import numpy as np
import pytest

import cct
from cct.errors import CctError, WeightsError
from cct.io import parse_text
from cct.io.hdf5 import load_solverstate_hdf5, save_solverstate_hdf5
from cct.proto import caffe_pb2

NET = '''
name: "shared"
layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "a" type: "InnerProduct" bottom: "x" top: "a"
        param { name: "w" } param { name: "%s" }
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "b" type: "InnerProduct" bottom: "a" top: "b"
        param { name: "w" } param { name: "%s" }
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }
'''


def make(bias_a='ba', bias_b='bb', dtype=np.float32):
    return cct.Net(parse_text(NET % (bias_a, bias_b), caffe_pb2.NetParameter()), dtype=dtype)


def test_only_owned_params_are_written_and_shared_ones_are_skipped_on_read(tmp_path):
    net = make()
    path = str(tmp_path / 'w.caffemodel.h5')
    net.save_hdf5(path)
    with h5py.File(path, 'r') as f:
        assert sorted(f['data']) == ['a', 'b', 'data']
        assert sorted(f['data/a']) == ['0', '1']
        assert sorted(f['data/b']) == ['1']  # b's weight is a's
    other = make()
    other.copy_from(path)
    for name in ('a', 'b'):
        for mine, theirs in zip(other.params[name], net.params[name]):
            np.testing.assert_array_equal(mine.data, theirs.data)
    unshared = cct.Net(parse_text((NET % ('ba', 'bb')).replace('name: "w"', 'name: ""'),
                                  caffe_pb2.NetParameter()))
    with pytest.raises(WeightsError, match="layer 'b': param 0 is missing from the file"):
        unshared.copy_from(path)


def test_shape_mismatch_and_missing_file(tmp_path):
    path = str(tmp_path / 'w.caffemodel.h5')
    make().save_hdf5(path)
    with h5py.File(path, 'r+') as f:
        del f['data/a/1']
        f['data/a'].create_dataset('1', data=np.zeros(4, np.float32))
    with pytest.raises(WeightsError, match="cannot copy param 1 weights from layer 'a'; shape "
                                           'mismatch. Source param shape is 4 \\(4\\); target '
                                           'param shape is 3 \\(3\\)'):
        make().copy_from(path)
    with pytest.raises(CctError, match='HDF5 weights file not found'):
        make().copy_from(str(tmp_path / 'missing.h5'))


def test_float64_nets_write_double_datasets(tmp_path):
    net = make(dtype=np.float64)
    path = str(tmp_path / 'd.caffemodel.h5')
    net.save_hdf5(path)
    with h5py.File(path, 'r') as f:
        assert f['data/a/0'].dtype == np.float64


def test_solverstate_round_trip(tmp_path):
    path = str(tmp_path / 's.solverstate.h5')
    history = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, np.float32)]
    save_solverstate_hdf5(path, 12, 'model_iter_12.caffemodel.h5', 2, history)
    state = load_solverstate_hdf5(path)
    assert (state['iter'], state['current_step'], state['learned_net']) == (
        12, 2, 'model_iter_12.caffemodel.h5')
    for mine, theirs in zip(state['history'], history):
        np.testing.assert_array_equal(mine, theirs)
    with h5py.File(path, 'r') as f:
        # H5LTmake_dataset_string: a scalar, NUL-terminated fixed-length string.
        assert f['learned_net'].shape == ()
        assert f['learned_net'].id.get_type().get_size() == len('model_iter_12.caffemodel.h5') + 1


def test_layers_sharing_a_name_are_filled_as_caffe_fills_them(tmp_path):
    """Caffe does not require unique layer names. A binary caffemodel fills the first net layer of
    a name (every file layer of that name goes there, the last one winning); an HDF5 file fills
    the last net layer of the name (Net's layer_names_index_)."""
    twins = parse_text('''
        layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "fc" type: "InnerProduct" bottom: "x" top: "a"
                inner_product_param { num_output: 4 } }
        layer { name: "fc" type: "InnerProduct" bottom: "x" top: "b"
                inner_product_param { num_output: 4 } }''', caffe_pb2.NetParameter())
    def fcs(net):
        return [layer for layer in net.layers if layer.name == 'fc']
    source = cct.Net(twins)
    for value, layer in zip((1, 2), fcs(source)):
        for blob in layer.blobs:
            blob.data[...] = value
    binary = str(tmp_path / 'twins.caffemodel')
    source.save(binary)
    net = cct.Net(twins)
    net.copy_from(binary)
    assert [float(layer.blobs[0].data.max()) for layer in fcs(net)] == [2, 0]
    with h5py.File(str(tmp_path / 'twins.caffemodel.h5'), 'w') as f:
        f.create_dataset('data/fc/0', data=np.full((4, 3), 5, np.float32))
        f.create_dataset('data/fc/1', data=np.full(4, 5, np.float32))
    net = cct.Net(twins)
    net.copy_from(str(tmp_path / 'twins.caffemodel.h5'))
    assert [float(layer.blobs[0].data.max()) for layer in fcs(net)] == [0, 5]
