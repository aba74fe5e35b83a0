"""Every net of ../shared/nets (Caffe's examples and model zoo) builds, and runs forward and backward
in TRAIN phase with finite losses and gradients.

Data layers (Data, ImageData, HDF5Data, WindowData, MemoryData) become Input layers of the shapes
their parameters give (batch 2; crop_size, or the dataset's image size for uncropped LMDB nets; a
label of shape (N)), filled with random images and valid labels. Deploy nets get a training head:
their final Softmax becomes a SoftmaxWithLoss (or one is added after the last layer) fed by a label
Input, so backward reaches every layer. GoogLeNet keeps its three weighted losses.
"""
import os

import numpy as np
import pytest

from cct import rng
from cct.io import read_net_text, read_solver_text, upgrade_net
from cct.net import Net
from cct.proto import caffe_pb2

BATCH = 2
DATA_TYPES = ('Data', 'ImageData', 'HDF5Data', 'WindowData', 'MemoryData')

# (net file, image shape of its LMDB when the Data layer does not crop).
NETS = {
    'lenet.prototxt': None,
    'lenet_train_test.prototxt': (1, 28, 28),
    'lenet_consolidated_solver.prototxt': (1, 28, 28),
    'mnist_autoencoder.prototxt': (1, 28, 28),
    'cifar10_quick.prototxt': None,
    'cifar10_quick_train_test.prototxt': (3, 32, 32),
    'cifar10_full.prototxt': None,
    'cifar10_full_train_test.prototxt': (3, 32, 32),
    'cifar10_full_sigmoid_train_test_bn.prototxt': (3, 32, 32),
    'bvlc_alexnet/train_val.prototxt': None,
    'bvlc_alexnet/deploy.prototxt': None,
    'bvlc_reference_caffenet/train_val.prototxt': None,
    'bvlc_reference_caffenet/deploy.prototxt': None,
    'bvlc_googlenet/train_val.prototxt': None,
    'bvlc_googlenet/deploy.prototxt': None,
    'zoo/v1/lenet_train_test_v1.prototxt': (1, 28, 28),
    'zoo/v1/cifar10_quick_train_test_v1.prototxt': (3, 32, 32),
    'zoo/v1/caffenet_train_val_v1.prototxt': None,
    'zoo/v1/googlenet_train_val_v1.prototxt': None,
    'zoo/resnet50_deploy.prototxt': None,
    'zoo/squeezenet_v1.1_train_val.prototxt': None,
    'zoo/squeezenet_v1.1_deploy.prototxt': None,
    'zoo/mobilenet_deploy.prototxt': None,
    'zoo/mobilenet_v2_deploy.prototxt': None,
    'zoo/finetune_flickr_style/train_val.prototxt': None,
    'zoo/finetune_flickr_style/deploy.prototxt': None,
    'zoo/bvlc_reference_rcnn_ilsvrc13/deploy.prototxt': None,
}


def read_shared_net(shared, name):
    path = os.path.join(shared, 'nets', name)
    if name.endswith('_solver.prototxt'):
        net = caffe_pb2.NetParameter()
        net.CopyFrom(read_solver_text(path).net_param)
        upgrade_net(net, path)
        return net
    return read_net_text(path)


def data_shapes(layer, image_shape):
    """Top shapes (data, label) for a data layer, from its parameters."""
    if layer.type == 'HDF5Data':
        raise AssertionError("HDF5Data layer '%s': its top shapes come from the files; add them "
                             'to this test' % layer.name)
    crop = layer.transform_param.crop_size
    if layer.type == 'MemoryData':
        p = layer.memory_data_param
        image = (p.channels, p.height, p.width)
    elif layer.type == 'WindowData':
        image = (3, layer.window_data_param.crop_size, layer.window_data_param.crop_size)
    elif layer.type == 'ImageData':
        p = layer.image_data_param
        channels = 3 if p.is_color else 1
        image = (channels, crop, crop) if crop else (channels, p.new_height, p.new_width)
    elif crop:
        image = (image_shape[0] if image_shape else 3, crop, crop)
    else:
        image = image_shape
    if image is None or not all(image):
        raise AssertionError("no image shape known for %s layer '%s': add the dataset's image "
                             'shape to NETS' % (layer.type, layer.name))
    return [(BATCH,) + tuple(image), (BATCH,)][:len(layer.top)]


def make_input(layer, shapes):
    layer.type = 'Input'
    for field in ('data_param', 'image_data_param', 'hdf5_data_param', 'window_data_param',
                  'memory_data_param', 'transform_param'):
        layer.ClearField(field)
    layer.input_param.ClearField('shape')
    for shape in shapes:
        layer.input_param.shape.add(dim=shape)


def trainable(net, image_shape):
    """The net with data layers as Inputs, batch BATCH, and a loss for deploy nets."""
    has_loss = False
    for layer in net.layer:
        if layer.type in DATA_TYPES:
            make_input(layer, data_shapes(layer, image_shape))
        elif layer.type == 'Input':
            for shape in layer.input_param.shape:
                shape.dim[0] = BATCH
        has_loss |= layer.type.endswith('Loss')
    if not has_loss:
        # A training graph normalises with batch statistics, as these models were trained.
        for layer in net.layer:
            layer.batch_norm_param.ClearField('use_global_stats')
        last = net.layer[-1]
        if last.type == 'Softmax':
            last.type = 'SoftmaxWithLoss'
        else:
            last = net.layer.add(name='added_loss', type='SoftmaxWithLoss', top=['added_loss'],
                                 bottom=[last.top[0]])
        last.bottom.append('added_label')
        label = caffe_pb2.LayerParameter(name='added_label', type='Input', top=['added_label'])
        label.input_param.shape.add(dim=[BATCH])
        layers = [label] + list(net.layer)
        del net.layer[:]
        net.layer.extend(layers)
    net.state.phase = caffe_pb2.TRAIN
    return net, not has_loss


def fill_weights(net, gen):
    """MSRA-fill the weights a deploy net leaves at zero (they come from a .caffemodel)."""
    for blobs in net.params.values():
        for blob in blobs:
            if blob.ndim >= 2 and not blob.data.any():
                fan_in = blob.count // blob.shape[0]
                blob.data[...] = gen.normal(0, np.sqrt(2.0 / fan_in), blob.shape)


def fill_inputs(net, gen):
    """Random images in [0, 1); labels valid for every classifier that reads them (through Splits,
    whose tops share the input's memory)."""
    readers = [(bottoms[1], bottoms[0].shape[1]) for layer, bottoms in
               zip(net.layers, net.bottom_vecs)
               if layer.type in ('SoftmaxWithLoss', 'Accuracy') and len(bottoms) > 1]
    for index in net.input_blob_indices:
        blob = net.blobs_list[index]
        classes = [count for label, count in readers if np.shares_memory(label.data, blob.data)]
        if classes:
            blob.data[...] = gen.integers(0, min(classes), blob.shape)
        else:
            blob.data[...] = gen.random(blob.shape)


def test_the_list_covers_every_shared_net(shared):
    """Every net file, and every solver that carries its net inline (net_param)."""
    root = os.path.join(shared, 'nets')
    found = set()
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, root)
            if not name.endswith('.prototxt'):
                continue
            if 'solver' not in name or read_solver_text(path).HasField('net_param'):
                found.add(relative)
    assert 'lenet_consolidated_solver.prototxt' in found
    assert found - set(NETS) == set()


@pytest.mark.parametrize('name', sorted(NETS))
def test_net_trains_one_step(shared, name):
    net_param, deploy = trainable(read_shared_net(shared, name), NETS[name])
    rng.set_random_seed(1701)
    net = Net(net_param, caffe_pb2.TRAIN)
    gen = np.random.default_rng(0)
    if deploy:
        fill_weights(net, gen)
    fill_inputs(net, gen)
    net.clear_param_diffs()
    loss = net.forward_backward()
    assert np.isfinite(loss)
    losses = [(net.blob_names[i], weight) for i, weight in enumerate(net.loss_weight_by_blob)
              if weight]
    assert losses, 'the net has no loss'
    for blob_name, _ in losses:
        value = net.blobs[blob_name].data
        assert np.isfinite(value).all(), 'loss %s is %s' % (blob_name, value)
    first_learned = next(blob for blob, lr in zip(net.learnable_params, net.params_lr) if lr)
    assert first_learned.diff.any(), 'backward did not reach the first learnable layer'
    for layer_name, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            assert np.isfinite(blob.diff).all(), 'gradient of %s param %d' % (layer_name, i)
    if name.startswith('bvlc_googlenet/train_val') or 'googlenet_train_val_v1' in name:
        weights = sorted(weight for weight in net.loss_weight_by_blob if weight)
        assert weights == pytest.approx([0.3, 0.3, 1.0])
