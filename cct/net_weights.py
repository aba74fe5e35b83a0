"""What a Net reads and writes besides running: weights by layer name (Caffe's
CopyTrainedLayersFrom, ToProto, a .caffemodel's Save) and the layers' resume states (exact resume,
cct/solver/resume_state.py). Mixed into cct.net.Net.
"""
import os

import numpy as np

from cct import io as cct_io
from cct.blob import shape_string
from cct.errors import WeightsError
from cct.io.blobproto import blobproto_to_array, has_legacy_shape, proto_shape
from cct.log import logger
from cct.proto import caffe_pb2


class NetWeightsMixin:
    """Weights and resume states of a Net (its layers, layer_names, _layer_index, dtype)."""

    def resume_state(self):
        """{layer name: state} of the layers that keep a resume state (Layer.resume_state)."""
        states = {}
        for name, layer in zip(self.layer_names, self.layers):
            state = layer.resume_state()
            if state is not None:
                states[name] = state
        return states

    def set_resume_state(self, states, source):
        """Give each layer its state from ``states``; a layer named there that this net lacks,
        or one of this net's stateful layers missing there, is logged and left as it is."""
        for name, state in states.items():
            if name not in self._layer_index:
                logger.warning('%s: no layer %s in net %s to give its resume state to',
                               source, name, self.name)
                continue
            self.layers[self._layer_index[name]].set_resume_state(state)
        for name, layer in zip(self.layer_names, self.layers):
            if name not in states and layer.resume_state() is not None:
                logger.warning('%s has no resume state for layer %s of net %s: it starts afresh',
                               source, name, self.name)

    def copy_trained_layers_from(self, net_param, source='<NetParameter>'):
        """Copy blobs layer by layer (matched by name) from a NetParameter with weights.

        Layers the net lacks are logged as ignored; a blob count or shape mismatch raises
        WeightsError naming the layer, blob index and both shapes. A file of which no layer with
        weights matches the net is warned about: the net would run on its initial weights.
        """
        copied = 0
        for source_layer in net_param.layer:
            name = source_layer.name
            # Caffe copies into the first layer of that name (names need not be unique).
            target = self.layer_names.index(name) if name in self._layer_index else None
            if target is None:
                logger.info('Ignoring source layer %s', name)
                continue
            blobs = self.layers[target].blobs
            if len(blobs) != len(source_layer.blobs):
                raise WeightsError("%s: incompatible number of blobs for layer '%s': the net has "
                                   '%d, the file has %d' % (source, name, len(blobs),
                                                            len(source_layer.blobs)))
            for j, (blob, proto) in enumerate(zip(blobs, source_layer.blobs)):
                if not _shape_equals(blob, proto):
                    raise WeightsError(
                        "%s: cannot copy param %d weights from layer '%s'; shape mismatch. Source "
                        'param shape is %s; target param shape is %s. To learn this layer\'s '
                        'parameters from scratch rather than copying from a saved net, rename the '
                        'layer.' % (source, j, name, shape_string(proto_shape(proto)),
                                    shape_string(blob.shape)))
                blob.data[...] = blobproto_to_array(proto, dtype=self.dtype).reshape(blob.shape)
            copied += bool(blobs)
        if not copied:
            self.warn_nothing_copied(source, [layer.name for layer in net_param.layer
                                              if len(layer.blobs)])

    def warn_nothing_copied(self, source, with_weights):
        """Say plainly that a weights file filled no layer of this net (Caffe only logs each layer
        it ignores): a test or fine-tuning run would go on with the initial weights."""
        logger.warning("%s: no layer with weights matched a layer of net '%s' by name (the file "
                       'has %d layers with weights%s): the net keeps its initial weights',
                       source, self.name, len(with_weights),
                       ', e.g. ' + ', '.join(with_weights[:3]) if with_weights else '')

    def copy_from(self, path):
        """Load weights from a .caffemodel (or .caffemodel.h5) by layer name, as Caffe's
        CopyTrainedLayersFrom does; several comma-separated files load in order."""
        for one in str(path).split(','):
            one = one.strip()
            if one.endswith('.h5'):
                from cct.io.hdf5 import load_weights_hdf5
                load_weights_hdf5(self, one)
            else:
                self.copy_trained_layers_from(cct_io.read_net_binary(one), one)

    def to_proto(self, write_diff=False):
        """The net as a NetParameter with every layer's blobs (Caffe's Net::ToProto)."""
        from cct.io.blobproto import fill_blobproto
        out = caffe_pb2.NetParameter(name=self.name)
        for layer in self.layers:
            layer_proto = out.layer.add()
            layer_proto.CopyFrom(layer.param)
            layer_proto.ClearField('blobs')
            for blob in layer.blobs:
                # Caffe's Blob<double> writes double_data: a float64 net keeps its precision.
                fill_blobproto(layer_proto.blobs.add(), blob.data,
                               blob.diff if write_diff else None, double=self.dtype == np.float64)
        return out

    def save(self, path, write_diff=False):
        """Write the weights as a binary .caffemodel that real Caffe reads."""
        cct_io.write_binary(self.to_proto(write_diff), os.fspath(path))


def _shape_equals(blob, proto):
    """Caffe's Blob::ShapeEquals: legacy 4-D dims compare right-aligned (an old (1,1,N,K)
    InnerProduct weight matches an (N,K) blob)."""
    if has_legacy_shape(proto):
        return blob.ndim <= 4 and all(blob.legacy_shape(i) == getattr(proto, f) for i, f in
                                      zip((-4, -3, -2, -1), ('num', 'channels', 'height', 'width')))
    return tuple(blob.shape) == tuple(proto.shape.dim)
