"""Test helpers shared by cct's own tests and users' layer tests: building one layer from a prototxt
fragment, capturing cct's log, old-format files, Caffe's LeNet fed by an Input, and the numerical
gradient checker (``cct.testing.gradcheck``)."""
import contextlib
import logging
import os

import numpy as np

from cct.blob import Blob
from cct.devices import get_device
from cct.io.protofiles import parse_text
from cct.io.blobproto import array_to_blobproto_bytes, blobproto_to_array
from cct.layers.base import V1_TYPE_NAMES, layer_class
from cct.log import logger
from cct.proto import caffe_pb2


def make_layer(text, bottom_shapes=(), num_top=1, dtype=np.float64, phase=caffe_pb2.TRAIN,
               bottom_data=None, seed=None, inplace=False, device=None):
    """Build and set up one layer from a LayerParameter prototxt fragment.

    Args:
        text: e.g. ``'type: "ReLU" relu_param { negative_slope: 0.1 }'``.
        bottom_shapes: one shape per bottom blob.
        num_top: number of top blobs (ignored when ``inplace``).
        dtype: blob dtype; gradient checks use float64.
        phase: the layer's phase.
        bottom_data: optional arrays for the bottoms; otherwise standard normal values.
        seed: seeds the bottom values.
        inplace: make top i the same blob as bottom i.
        device: the Device (or its name) the layer and blobs live on; the CPU by default. A layer
            the device cannot run raises DeviceError, as a net would.

    Returns:
        (layer, bottom, top): the set-up layer and its blob lists.
    """
    if device is not None:
        device = get_device(device)
    param = parse_text(text, caffe_pb2.LayerParameter(), '<layer>')
    if not param.name:
        param.name = param.type.lower() or 'layer'
    if not param.HasField('phase'):
        param.phase = phase
    gen = np.random.default_rng(seed)
    bottom = []
    for i, shape in enumerate(bottom_shapes):
        blob = Blob(*shape, dtype=dtype, device=device) if shape else \
            Blob((), dtype=dtype, device=device)
        blob.data[...] = bottom_data[i] if bottom_data is not None else gen.standard_normal(shape)
        bottom.append(blob)
    top = list(bottom) if inplace else [Blob(dtype=dtype, device=device)
                                        for _ in range(num_top)]
    layer = layer_class(param.type, param.name)(param, dtype, device)
    layer.check_device()
    layer.layer_setup(bottom, top)
    return layer, bottom, top


class _ListHandler(logging.Handler):
    def __init__(self, messages):
        super().__init__(logging.DEBUG)
        self.messages = messages

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def captured_log(level=logging.INFO):
    """Collect the messages cct logs inside the ``with`` block, whatever the CLI configured.

    Yields:
        the list the messages (formatted, without glog's prefix) are appended to.
    """
    messages = []
    handler = _ListHandler(messages)
    saved_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved_level)


def to_v1_layout(model):
    """A V2 NetParameter (with weights) in Caffe's pre-2015 V1 layout: ``layers`` with enum types,
    blobs described by the legacy 4-D num/channels/height/width dims, as old model-zoo files are."""
    v1_enum = {v2: v1 for v1, v2 in V1_TYPE_NAMES.items()}
    old = caffe_pb2.NetParameter(name=model.name)
    for layer in model.layer:
        v1 = old.layers.add(name=layer.name, type=v1_enum[layer.type])
        v1.bottom.extend(layer.bottom)
        v1.top.extend(layer.top)
        for blob in layer.blobs:
            v1.blobs.add().MergeFromString(
                array_to_blobproto_bytes(blobproto_to_array(blob), legacy=True))
    return old


def lenet_train_input(shared, batch):
    """Caffe's LeNet TRAIN net (``shared``/nets/lenet_train_test.prototxt) with an Input of
    ``batch`` images and labels in place of its Data layer."""
    from cct.io import read_net_text
    from cct.netgraph import filter_net
    param = read_net_text(os.path.join(shared, 'nets', 'lenet_train_test.prototxt'))
    param.state.phase = caffe_pb2.TRAIN
    param = filter_net(param)
    layers = list(param.layer)
    del param.layer[:]
    for layer in layers:
        if layer.type == 'Data':
            data = param.layer.add(name='mnist', type='Input', top=['data', 'label'])
            data.input_param.shape.add().dim.extend((batch, 1, 28, 28))
            data.input_param.shape.add().dim.append(batch)
        else:
            param.layer.add().CopyFrom(layer)
    return param


def step_on_mnist(solver, mnist, steps, batch):
    """Run ``steps`` SGD steps of ``solver`` (a net from lenet_train_input) on consecutive
    ``batch``-image slices of ``mnist`` ((images, labels)), scaled by Caffe's LeNet 1/256; returns
    the losses."""
    images, labels = mnist
    losses = []
    for step in range(steps):
        window = slice(step * batch, (step + 1) * batch)
        solver.net.blobs['data'].data[...] = images[window, None] * np.float32(0.00390625)
        solver.net.blobs['label'].data[...] = labels[window]
        solver.step(1)
        losses.append(float(solver.net.blobs['loss'].data))
    return losses
