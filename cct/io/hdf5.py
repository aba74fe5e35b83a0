"""HDF5 weights (``.caffemodel.h5``) and solver states (``.solverstate.h5``) in Caffe's layout
(Net::ToHDF5 / CopyTrainedLayersFromHDF5 in net.cpp, SGDSolver's HDF5 snapshot and restore, and
util/hdf5.cpp), through h5py.

Weights: group ``/data`` with one subgroup per layer (every layer, even those without params) and
datasets ``"0"``, ``"1"``, ... per param, in the net's float type. Only params a layer owns are written;
a shared param is left out, and reading skips a missing dataset only when the net shares that param.
With ``write_diff`` a parallel ``/diff`` tree holds every param's gradient, shared ones included.
Solver state: datasets ``iter`` and ``current_step`` (int, shape (1,)), ``learned_net`` (a
NUL-terminated string scalar, as H5LTmake_dataset_string writes it) and group ``history`` with
datasets ``"0"`` ... ``"K-1"``. Files are written to a temporary name and renamed into place.
"""
import os

import numpy as np

from cct.errors import CctError, SolverError, WeightsError, install_hint
from cct.blob import shape_string
from cct.log import logger


def _h5py():
    try:
        import h5py
    except ImportError:
        raise CctError('HDF5 files (.h5) need the h5py package: '
                       + install_hint('hdf5', 'h5py>=3')) from None
    return h5py


class _AtomicH5:
    """An h5py File written under a temporary name and renamed over ``path`` on success."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.tmp = '%s.tmp%d' % (self.path, os.getpid())

    def __enter__(self):
        self.file = _h5py().File(self.tmp, 'w')
        return self.file

    def __exit__(self, kind, value, traceback):
        self.file.close()
        if kind is None:
            os.replace(self.tmp, self.path)
        elif os.path.exists(self.tmp):
            os.remove(self.tmp)
        return False


def _open_for_reading(path, what):
    h5py = _h5py()
    try:
        return h5py.File(os.fspath(path), 'r')
    except FileNotFoundError:
        raise CctError('%s file not found: %s' % (what, path)) from None
    except OSError as e:
        raise CctError('cannot read %s file %s as HDF5: %s' % (what, path, e)) from None


def save_weights_hdf5(net, path, write_diff=False):
    """Write ``net``'s params as a .caffemodel.h5 (Caffe's Net::ToHDF5)."""
    with _AtomicH5(path) as f:
        data = f.create_group('data')
        diff = f.create_group('diff') if write_diff else None
        for layer_id, (name, layer) in enumerate(zip(net.layer_names, net.layers)):
            layer_data = data.create_group(name)
            layer_diff = diff.create_group(name) if write_diff else None
            for param_id, blob in enumerate(layer.blobs):
                net_param_id = net.param_id_vecs[layer_id][param_id]
                if net.param_owners[net_param_id] == -1:
                    layer_data.create_dataset(str(param_id), data=blob.data)
                if write_diff:
                    layer_diff.create_dataset(str(param_id), data=blob.diff)


def load_weights_hdf5(net, path):
    """Copy params from a .caffemodel.h5 into ``net`` by layer name (CopyTrainedLayersFromHDF5).

    Raises:
        WeightsError: a layer with more params in the file than in the net, a param missing from
            the file that the net does not share, or a shape mismatch.
    """
    with _open_for_reading(path, 'HDF5 weights') as f:
        if 'data' not in f:
            raise WeightsError('%s: no /data group; not a Caffe .caffemodel.h5 file' % path)
        data = f['data']
        prefixes = {name.split('/')[0] for name in net.layer_names}
        for name in data:
            if name not in prefixes:
                logger.info('Ignoring source layer %s', name)
        # Caffe cannot write a layer name holding '/' (H5Gcreate2 makes no intermediate groups);
        # h5py nests it, so layers are looked up by path. Of several layers with one name, Caffe
        # fills the last (its layer_names_index_), not the first as the binary reader does.
        last_of_name = {name: layer_id for layer_id, name in enumerate(net.layer_names)}
        for name, layer_id in last_of_name.items():
            if name not in data or not isinstance(data[name], _h5py().Group):
                continue
            blobs = net.layers[layer_id].blobs
            group = data[name]
            in_file = sum(1 for key in group if key.isdigit())
            if in_file > len(blobs):
                raise WeightsError("%s: incompatible number of blobs for layer '%s': the net has "
                                   '%d, the file has %d' % (path, name, len(blobs), in_file))
            for param_id, blob in enumerate(blobs):
                key = str(param_id)
                if key not in group:
                    if net.param_owners[net.param_id_vecs[layer_id][param_id]] != -1:
                        continue  # a shared param: its owner carries the values
                    raise WeightsError("%s: incompatible number of blobs for layer '%s': param "
                                       '%d is missing from the file' % (path, name, param_id))
                values = group[key]
                if tuple(values.shape) != tuple(blob.shape):
                    raise WeightsError(
                        "%s: cannot copy param %d weights from layer '%s'; shape mismatch. "
                        'Source param shape is %s; target param shape is %s'
                        % (path, param_id, name, shape_string(values.shape),
                           shape_string(blob.shape)))
                blob.data[...] = values[()]


def _save_int(f, name, value):
    f.create_dataset(name, data=np.array([value], dtype=np.int32))


def _save_string(f, name, text):
    h5py = _h5py()
    encoded = text.encode('utf-8')
    string_type = h5py.h5t.C_S1.copy()
    string_type.set_size(len(encoded) + 1)
    string_type.set_strpad(h5py.h5t.STR_NULLTERM)
    space = h5py.h5s.create(h5py.h5s.SCALAR)
    dataset = h5py.h5d.create(f.id, name.encode(), string_type, space)
    dataset.write(space, space, np.array(encoded + b'\0', dtype='S%d' % (len(encoded) + 1)),
                  mtype=string_type)


def save_solverstate_hdf5(path, iteration, learned_net, current_step, history):
    """Write a .solverstate.h5 (SGDSolver::SnapshotSolverStateToHDF5)."""
    with _AtomicH5(path) as f:
        _save_int(f, 'iter', iteration)
        _save_string(f, 'learned_net', learned_net)
        _save_int(f, 'current_step', current_step)
        group = f.create_group('history')
        for i, array in enumerate(history):
            group.create_dataset(str(i), data=array)


def load_solverstate_hdf5(path):
    """Read a .solverstate.h5.

    Returns:
        dict with ``iter``, ``current_step``, ``learned_net`` (None when absent) and ``history``
        (list of arrays in index order).
    """
    with _open_for_reading(path, 'HDF5 solver state') as f:
        for key in ('iter', 'current_step', 'history'):
            if key not in f:
                raise SolverError('%s: no %r entry; not a Caffe .solverstate.h5 file' % (path, key))
        learned_net = None
        if 'learned_net' in f:
            raw = f['learned_net'][()]
            learned_net = (raw.decode('utf-8') if isinstance(raw, bytes) else str(raw)).rstrip('\0')
        group = f['history']
        history = [np.asarray(group[str(i)][()]) for i in range(len(group))]
        return {'iter': int(np.asarray(f['iter'][()]).ravel()[0]),
                'current_step': int(np.asarray(f['current_step'][()]).ravel()[0]),
                'learned_net': learned_net, 'history': history}
