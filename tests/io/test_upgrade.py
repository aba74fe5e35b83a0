"""Upgrades of old files (cct/io/upgrade.py), as Caffe's upgrade_proto.cpp applies them: V0 nets (a
``padding`` layer folded into the conv it feeds, flat fields to typed params), data-transformation
fields, V1 nets (the shipped V1 zoo nets upgrade to the shipped V2 files and build the same nets),
input fields to an Input layer, old BatchNorm ParamSpecs, and the solver's ``solver_type``."""
import os

import numpy as np
import pytest

from cct.errors import ParseError
from cct.io import parse_text, read_net_text, read_solver_text, upgrade_net, upgrade_solver
from cct.io import write_text
from cct.net import Net
from cct.proto import caffe_pb2
from cct.testing import captured_log


def net_text(text):
    return parse_text(text, caffe_pb2.NetParameter(), '<test>')


V0_NET = '''
name: "tiny_v0"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 8 input_dim: 8
layers { layer { name: "pad1" type: "padding" pad: 1 } bottom: "data" top: "pad1" }
layers {
  layer { name: "conv1" type: "conv" num_output: 4 kernelsize: 3 stride: 1 group: 1
          biasterm: true weight_filler { type: "gaussian" std: 0.01 }
          bias_filler { type: "constant" value: 0.5 }
          blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
  bottom: "pad1" top: "conv1"
}
layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 3 stride: 2 }
         bottom: "conv1" top: "pool1" }
layers { layer { name: "norm1" type: "lrn" local_size: 3 alpha: 0.0001 beta: 0.75 k: 2 }
         bottom: "pool1" top: "norm1" }
layers { layer { name: "drop1" type: "dropout" dropout_ratio: 0.25 } bottom: "norm1" top: "norm1" }
layers { layer { name: "fc" type: "innerproduct" num_output: 5 biasterm: false
                 weight_filler { type: "xavier" } }
         bottom: "norm1" top: "fc" }
layers { layer { name: "prob" type: "softmax" } bottom: "fc" top: "prob" }
'''

V0_NET_UPGRADED = '''
name: "tiny_v0"
layer { name: "input" type: "Input" top: "data"
        input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 4 bias_term: true pad: 1 kernel_size: 3 group: 1
                            stride: 1 weight_filler { type: "gaussian" std: 0.01 }
                            bias_filler { type: "constant" value: 0.5 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
        lrn_param { local_size: 3 alpha: 0.0001 beta: 0.75 k: 2 } }
layer { name: "drop1" type: "Dropout" bottom: "norm1" top: "norm1"
        dropout_param { dropout_ratio: 0.25 } }
layer { name: "fc" type: "InnerProduct" bottom: "norm1" top: "fc"
        inner_product_param { num_output: 5 bias_term: false weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
'''


def test_v0_net_upgrades_with_padding_folded():
    net = net_text(V0_NET)
    with captured_log() as log:
        assert upgrade_net(net, 'tiny.prototxt')
    assert net == net_text(V0_NET_UPGRADED)
    assert log[:2] == ['Attempting to upgrade input file specified using deprecated '
                       'V0LayerParameter: tiny.prototxt',
                       'Successfully upgraded file specified using deprecated V0LayerParameter']
    built = Net(net)
    assert built.blobs['conv1'].data.shape == (2, 4, 8, 8)   # the folded pad keeps 8x8
    assert built.blobs['pool1'].data.shape == (2, 4, 4, 4)   # ceil((8 - 3) / 2) + 1
    assert built.blobs['prob'].data.shape == (2, 5)


def test_v0_data_layers_move_transform_fields():
    net = net_text('''
        layers { layer { name: "data" type: "data" source: "train_db" meanfile: "mean.binaryproto"
                         batchsize: 16 cropsize: 20 mirror: true scale: 0.5 rand_skip: 3 }
                 top: "data" top: "label" }
        layers { layer { name: "images" type: "images" source: "list.txt" batchsize: 4
                         shuffle_images: true new_height: 32 new_width: 30 }
                 top: "im" top: "im_label" }
        layers { layer { name: "cat" type: "concat" concat_dim: 1 } bottom: "data" bottom: "im"
                 top: "cat" }''')
    assert upgrade_net(net)
    assert net == net_text('''
        layer { name: "data" type: "Data" top: "data" top: "label"
                transform_param { scale: 0.5 mirror: true crop_size: 20
                                  mean_file: "mean.binaryproto" }
                data_param { source: "train_db" batch_size: 16 rand_skip: 3 } }
        layer { name: "images" type: "ImageData" top: "im" top: "im_label"
                image_data_param { source: "list.txt" batch_size: 4 shuffle: true
                                   new_height: 32 new_width: 30 } }
        layer { name: "cat" type: "Concat" bottom: "data" bottom: "im" top: "cat"
                concat_param { concat_dim: 1 } }''')


def test_v0_field_on_the_wrong_layer_type_is_reported_and_dropped():
    net = net_text('layers { layer { name: "r" type: "relu" num_output: 3 } bottom: "x" top: "x" }'
                   ' input: "x" input_dim: 1 input_dim: 1 input_dim: 1 input_dim: 1')
    with captured_log() as log:
        assert not upgrade_net(net)
    assert 'Unknown parameter num_output for layer type relu' in log
    assert net.layer[1] == parse_text('name: "r" type: "ReLU" bottom: "x" top: "x"',
                                      caffe_pb2.LayerParameter())


@pytest.mark.parametrize('text, message', [
    ('layers { layer { name: "p" type: "padding" pad: 1 } bottom: "x" top: "p" } '
     'layers { layer { name: "r" type: "relu" } bottom: "p" top: "r" } input: "x"',
     "padding layer 'p' must feed a single-input conv or pool layer"),
    ('layers { layer { name: "a" type: "conv" } bottom: "nowhere" top: "a" }',
     "Unknown blob input nowhere to layer 'a'"),
    ('layers { layer { name: "a" type: "convolution" } top: "a" }',
     "Unknown V0 layer type 'convolution'"),
    ('layer { name: "new" type: "ReLU" } layers { name: "old" type: RELU }',
     "includes both 'layer' and 'layers' fields"),
])
def test_upgrade_errors(text, message):
    with pytest.raises(ParseError, match=message):
        upgrade_net(net_text(text))


def test_v1_data_transformation_fields():
    net = net_text('''
        layers { name: "d" type: DATA top: "data" top: "label"
                 data_param { source: "db" batch_size: 4 scale: 0.1 mean_file: "m" crop_size: 3
                              mirror: true } }
        layers { name: "w" type: WINDOW_DATA top: "w" top: "wl"
                 window_data_param { source: "windows" scale: 2 } }
        layers { name: "bare" type: IMAGE_DATA top: "i" top: "il" }''')
    with captured_log() as log:
        assert upgrade_net(net, 'old.prototxt')
    # As Caffe's mutable_*_param() calls leave them, the bare data layer gains empty messages.
    assert net == net_text('''
        layer { name: "d" type: "Data" top: "data" top: "label"
                transform_param { scale: 0.1 mirror: true crop_size: 3 mean_file: "m" }
                data_param { source: "db" batch_size: 4 } }
        layer { name: "w" type: "WindowData" top: "w" top: "wl"
                transform_param { scale: 2 } window_data_param { source: "windows" } }
        layer { name: "bare" type: "ImageData" top: "i" top: "il"
                transform_param { } image_data_param { } }''')
    assert log[:3] == ['Attempting to upgrade input file specified using deprecated '
                       'transformation parameters: old.prototxt',
                       'Successfully upgraded file specified using deprecated data transformation '
                       'parameters.',
                       'Note that future Caffe releases will only support transform_param '
                       'messages for transformation fields.']


def test_v1_layer_fields_map_to_param_specs_and_strings():
    net = net_text('''
        layers { name: "ip" type: INNER_PRODUCT bottom: "x" top: "y"
                 param: "shared_w" param: "" blob_share_mode: PERMISSIVE
                 blobs_lr: 1 blobs_lr: 2 weight_decay: 0.5 loss_weight: 0.25
                 include { phase: TRAIN stage: "s" } inner_product_param { num_output: 3 } }
        layers { name: "nothing" type: NONE }
        layers { name: "loss" type: SOFTMAX_LOSS bottom: "y" bottom: "l"
                 exclude { min_level: 2 } loss_param { ignore_label: 1 } }''')
    assert upgrade_net(net)
    assert net == net_text('''
        layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" loss_weight: 0.25
                param { name: "shared_w" share_mode: PERMISSIVE lr_mult: 1 decay_mult: 0.5 }
                param { name: "" lr_mult: 2 }
                include { phase: TRAIN stage: "s" } inner_product_param { num_output: 3 } }
        layer { name: "nothing" type: "" }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "y" bottom: "l"
                exclude { min_level: 2 } loss_param { ignore_label: 1 } }''')


V1_TO_V2 = [
    ('zoo/v1/lenet_train_test_v1.prototxt', 'lenet_train_test.prototxt'),
    ('zoo/v1/cifar10_quick_train_test_v1.prototxt', 'cifar10_quick_train_test.prototxt'),
    ('zoo/v1/caffenet_train_val_v1.prototxt', 'bvlc_reference_caffenet/train_val.prototxt'),
    ('zoo/v1/googlenet_train_val_v1.prototxt', 'bvlc_googlenet/train_val.prototxt'),
]


def comparable(net):
    """GoogLeNet's V1 file differs from its V2 twin only in ignored xavier ``std`` values and the
    name of one loss top; everything else must be equal."""
    for layer in net.layer:
        for param in (layer.convolution_param, layer.inner_product_param):
            if param.weight_filler.type == 'xavier':
                param.weight_filler.ClearField('std')
        for i, top in enumerate(layer.top):
            if top == 'loss2/loss1':
                layer.top[i] = 'loss2/loss2'
    return net


@pytest.mark.parametrize('v1_path, v2_path', V1_TO_V2, ids=[v1 for v1, _ in V1_TO_V2])
def test_shipped_v1_nets_upgrade_to_the_shipped_v2_files(shared, v1_path, v2_path):
    v1 = read_net_text(os.path.join(shared, 'nets', v1_path))
    v2 = read_net_text(os.path.join(shared, 'nets', v2_path))
    if 'googlenet' in v1_path:
        assert v1 != v2
        v1, v2 = comparable(v1), comparable(v2)
    assert v1 == v2


def data_as_input(param, batch=2):
    """Data layers read LMDBs ../shared does not hold: give their tops as Input blobs instead."""
    for layer in param.layer:
        if layer.type != 'Data':
            continue
        crop = layer.transform_param.crop_size
        image = (3, crop, crop) if crop else (1, 28, 28) if 'mnist' in \
            layer.data_param.source else (3, 32, 32)
        layer.type = 'Input'
        layer.ClearField('data_param')
        layer.ClearField('transform_param')
        layer.input_param.shape.add().dim.extend((batch,) + image)
        layer.input_param.shape.add().dim.append(batch)
    return param


def describe(net):
    return [(name, layer.type, net.bottom_names[name], net.top_names[name],
             [blob.data.shape for blob in layer.blobs], net.layer_need_backward[i])
            for i, (name, layer) in enumerate(zip(net._layer_names, net.layers))], \
        {name: blob.data.shape for name, blob in net.blobs.items()}


@pytest.mark.parametrize('v1_path', [V1_TO_V2[0][0], V1_TO_V2[1][0], V1_TO_V2[3][0]])
def test_v1_net_and_its_upgraded_text_build_identical_nets(shared, tmp_path, v1_path):
    v1_file = os.path.join(shared, 'nets', v1_path)
    upgraded = str(tmp_path / 'upgraded.prototxt')
    write_text(read_net_text(v1_file), upgraded)
    with open(upgraded) as f:
        text = f.read()
    assert 'layers {' not in text and 'layer {' in text
    for phase in (caffe_pb2.TRAIN, caffe_pb2.TEST):
        old = data_as_input(read_net_text(v1_file))
        new = data_as_input(read_net_text(upgraded))
        old.state.phase = new.state.phase = phase
        assert describe(Net(old)) == describe(Net(new))


def test_input_fields_become_an_input_layer_first():
    net = net_text('''
        name: "two_inputs"
        layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "c" }
        input: "a" input_shape { dim: 2 dim: 3 }
        input: "b" input_shape { dim: 2 dim: 3 }''')
    assert upgrade_net(net)
    assert net == net_text('''
        name: "two_inputs"
        layer { name: "input" type: "Input" top: "a" top: "b"
                input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } } }
        layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "c" }''')
    net = net_text('input: "x" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 4')
    with captured_log() as log:
        upgrade_net(net, 'deploy.prototxt')
    assert log == ['Attempting to upgrade input file specified using deprecated input fields: '
                   'deploy.prototxt',
                   'Successfully upgraded file specified using deprecated input fields.',
                   'Note that future Caffe releases will only support input layers and not input '
                   'fields.']
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 2, 3, 4]
    assert not len(net.input) and not len(net.input_dim)


def test_bare_input_of_old_caffemodels_is_dropped():
    net = net_text('input: "data" layer { name: "fc" type: "InnerProduct" }')
    assert upgrade_net(net)
    assert net == net_text('layer { name: "fc" type: "InnerProduct" }')


@pytest.mark.parametrize('text, message', [
    ('input: "a" input: "b" input_shape { dim: 1 }', 'Exactly one input_shape must be specified'),
    ('input: "a" input_dim: 1 input_dim: 2', 'input_dim needs 4 values per input'),
])
def test_input_field_errors(text, message):
    with pytest.raises(ParseError, match=message):
        upgrade_net(net_text(text))


def test_batchnorm_with_three_param_specs_gets_zero_rates():
    net = net_text('''
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 4 dim: 2 } } }
        layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x"
                param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 1 } param { name: "p" } }
        layer { name: "bn2" type: "BatchNorm" bottom: "x" top: "y" param { lr_mult: 0 } }''')
    with captured_log() as log:
        assert upgrade_net(net, 'bn.prototxt')
    assert 'Attempting to upgrade batch norm layers using deprecated params: bn.prototxt' in log
    assert [(p.name, p.lr_mult, p.decay_mult, p.HasField('decay_mult'))
            for p in net.layer[1].param] == [('', 0, 0, True), ('', 0, 0, True), ('p', 0, 0, True)]
    assert [(p.lr_mult, p.HasField('decay_mult')) for p in net.layer[2].param] == [(0, False)]
    built = Net(net, caffe_pb2.TRAIN)
    assert not built.layer_need_backward[1]


@pytest.mark.parametrize('enum_name, type_name', [
    ('SGD', 'SGD'), ('NESTEROV', 'Nesterov'), ('ADAGRAD', 'AdaGrad'), ('RMSPROP', 'RMSProp'),
    ('ADADELTA', 'AdaDelta'), ('ADAM', 'Adam')])
def test_solver_type_enum_becomes_type_string(enum_name, type_name):
    solver = parse_text('base_lr: 0.1 solver_type: %s' % enum_name, caffe_pb2.SolverParameter())
    upgrade_solver(solver)
    assert solver.type == type_name and not solver.HasField('solver_type')


def test_solver_file_upgrades_on_read_and_refuses_both_fields(tmp_path):
    path = tmp_path / 'old_solver.prototxt'
    path.write_text('net: "n.prototxt" base_lr: 0.01 lr_policy: "fixed" solver_type: ADAM')
    with captured_log() as log:
        solver = read_solver_text(str(path))
    assert solver.type == 'Adam'
    assert log[:3] == [
        "Attempting to upgrade input file specified using deprecated 'solver_type' field (enum)': "
        '%s' % path,
        "Successfully upgraded file specified using deprecated 'solver_type' field (enum) to "
        "'type' field (string).",
        "Note that future Caffe releases will only support 'type' field (string) for a solver's "
        'type.']
    path.write_text('base_lr: 0.01 solver_type: ADAM type: "Adam"')
    with pytest.raises(ParseError, match='old solver_type field .enum. and new type field '
                                         '.string. cannot be both specified'):
        read_solver_text(str(path))


def test_current_nets_are_left_alone(shared):
    net = read_net_text(os.path.join(shared, 'nets', 'lenet.prototxt'))
    before = net.SerializeToString()
    with captured_log() as log:
        assert upgrade_net(net)
    assert net.SerializeToString() == before and log == []
    np.testing.assert_equal(len(net.layer), 9)
