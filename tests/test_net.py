"""Net construction (cct/net.py, cct/netgraph.py) with Caffe's semantics (net.cpp, insert_splits.cpp):
NetState filtering, inputs, Split insertion and names, in-place blobs, loss weights, which layers run
backward, parameter sharing, outputs, the layer registry, and the errors for bad wiring."""
import logging
import os

import numpy as np
import pytest

from cct.errors import NetError, UnknownLayerError
from cct.io import parse_text
from cct.layers.base import Layer, layer_class, layer_type_list, register
from cct.net import Net
from cct.netgraph import filter_net, insert_splits, state_meets_rule
from cct.proto import caffe_pb2

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def net_param(text):
    return parse_text(text, caffe_pb2.NetParameter(), '<test>')


def build(text, phase=None, **kwargs):
    return Net(net_param(text), phase, **kwargs)


def rule(text):
    return parse_text(text, caffe_pb2.NetStateRule())


def state(text):
    return parse_text(text, caffe_pb2.NetState())


# ------------------------------------------------------------------ NetState filtering
@pytest.mark.parametrize('rule_text, state_text, met', [
    ('', '', True),
    ('phase: TRAIN', 'phase: TRAIN', True),
    ('phase: TRAIN', '', False),                       # NetState's phase defaults to TEST
    ('min_level: 2', 'level: 2', True),
    ('min_level: 2', 'level: 1', False),
    ('max_level: 2', 'level: 3', False),
    ('min_level: 1 max_level: 3', 'level: 3', True),
    ('stage: "a" stage: "b"', 'stage: "b" stage: "a" stage: "c"', True),
    ('stage: "a" stage: "b"', 'stage: "a"', False),   # all of the rule's stages are needed
    ('not_stage: "a"', 'stage: "b"', True),
    ('not_stage: "a" not_stage: "z"', 'stage: "b" stage: "z"', False),
    ('phase: TEST stage: "x" not_stage: "y" min_level: 1',
     'phase: TEST stage: "x" level: 1', True),
])
def test_state_meets_rule(rule_text, state_text, met):
    assert state_meets_rule(state(state_text), rule(rule_text)) is met


FILTERED = '''
state { phase: TRAIN level: 1 stage: "s" }
layer { name: "always" }
layer { name: "train_only" include { phase: TRAIN } }
layer { name: "test_only" include { phase: TEST } }
layer { name: "not_train" exclude { phase: TRAIN } }
layer { name: "either" include { phase: TEST } include { stage: "s" } }
layer { name: "excluded_by_any" exclude { min_level: 5 } exclude { stage: "s" } }
layer { name: "deep" include { min_level: 2 } }
layer { name: "shallow" include { max_level: 1 } }
layer { name: "unless_s" include { not_stage: "s" } }
'''


def test_filter_net_keeps_what_the_state_includes():
    kept = [layer.name for layer in filter_net(net_param(FILTERED)).layer]
    assert kept == ['always', 'train_only', 'either', 'shallow']


def test_include_and_exclude_together_is_an_error():
    with pytest.raises(NetError, match="Layer 'both': specify either include rules or exclude "
                                       'rules; not both'):
        filter_net(net_param('layer { name: "both" include { phase: TRAIN } '
                             'exclude { phase: TEST } }'))


def test_net_arguments_set_phase_level_and_stages():
    text = '''
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 } } }
        layer { name: "t" type: "ReLU" bottom: "x" top: "t" include { phase: TRAIN } }
        layer { name: "l" type: "ReLU" bottom: "x" top: "l" include { min_level: 1 } }
        layer { name: "s" type: "ReLU" bottom: "x" top: "s" include { stage: "deploy" } }'''
    assert build(text).layer_names == ['in']                        # NetState defaults: TEST, 0
    assert build(text, TRAIN).layer_names[-1] == 't'
    net = build(text, TEST, level=1, stages=['deploy'])
    assert [n for n in net.layer_names if not n.endswith('split')] == ['in', 'l', 's']
    assert net.layers[-1].phase == TEST                 # layers inherit the net's phase


def test_a_net_file_gets_the_state_caffe_gives_it(tmp_path):
    """Net(file, phase, level=0, stages): phase and level replace the file's ``state``, stages are
    added to its own; an in-memory NetParameter keeps its state unless told otherwise."""
    text = '''state { phase: TRAIN level: 2 stage: "own" }
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 } } }
        layer { name: "t" type: "ReLU" bottom: "x" top: "t" include { phase: TRAIN } }
        layer { name: "l" type: "ReLU" bottom: "x" top: "l" include { min_level: 2 } }
        layer { name: "s" type: "ReLU" bottom: "x" top: "s" include { stage: "own" stage: "more" } }
        '''
    path = tmp_path / 'stateful.prototxt'
    path.write_text(text)
    assert Net(str(path), TEST).layer_names == ['in']
    assert Net(str(path), TEST, level=2, stages=['more']).layer_names[-2:] == ['l', 's']
    assert Net(str(path), TRAIN).layer_names[-1] == 't'
    assert Net(net_param(text)).layer_names[-2:] == ['t', 'l']


# ------------------------------------------------------------------ inputs and outputs
def test_input_fields_in_a_file_become_net_inputs(tmp_path):
    path = tmp_path / 'legacy.prototxt'
    path.write_text('input: "data" input_dim: 2 input_dim: 3 input_dim: 4 input_dim: 5\n'
                    'input: "label" input_dim: 2 input_dim: 1 input_dim: 1 input_dim: 1\n'
                    'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }\n')
    net = Net(str(path), TEST)
    assert net.inputs == ['data', 'label']
    assert net.blobs['data'].data.shape == (2, 3, 4, 5)
    assert net.blobs['label'].data.shape == (2, 1, 1, 1)
    assert net.layer_names[0] == 'input' and net.layers[0].type == 'Input'
    assert net.outputs == ['label', 'r']


def test_input_shape_and_several_input_layers():
    net = build('''
        input: "ignored_without_upgrade"
        layer { name: "a" type: "Input" top: "x" top: "y"
                input_param { shape { dim: 3 dim: 2 } } }
        layer { name: "b" type: "Input" top: "z" input_param { shape { dim: 4 } } }''')
    # An in-memory NetParameter is used as is (Caffe upgrades only what it reads from files).
    assert net.inputs == ['x', 'y', 'z']
    assert [net.blobs[n].data.shape for n in net.inputs] == [(3, 2), (3, 2), (4,)]
    assert net.outputs == ['x', 'y', 'z']


def test_outputs_are_unconsumed_blobs_sorted_by_name():
    net = build('''
        layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 } } }
        layer { name: "p" type: "ReLU" bottom: "x" top: "zeta" }
        layer { name: "q" type: "ReLU" bottom: "zeta" top: "beta" }
        layer { name: "r" type: "ReLU" bottom: "zeta" top: "alpha" }
        layer { name: "s" type: "ReLU" bottom: "x" top: "gamma" }''')
    assert net.outputs == ['alpha', 'beta', 'gamma']


# ------------------------------------------------------------------ splits
SPLIT_NET = '''
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" } } }
layer { name: "relu" type: "ReLU" bottom: "ip" top: "ip" }
layer { name: "loss_a" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss_a" }
layer { name: "loss_b" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss_b" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }
'''


def test_split_names_follow_caffe():
    net = build(SPLIT_NET)
    assert net.layer_names == ['data', 'label_data_1_split', 'ip', 'relu', 'ip_relu_0_split',
                               'loss_a', 'loss_b', 'acc']
    split = net.layers[4]
    assert split.type == 'Split'
    assert net.bottom_names['ip_relu_0_split'] == ['ip']     # the in-place chain's last producer
    assert net.top_names['ip_relu_0_split'] == ['ip_relu_0_split_0', 'ip_relu_0_split_1',
                                                'ip_relu_0_split_2']
    assert net.bottom_names['loss_a'] == ['ip_relu_0_split_0', 'label_data_1_split_0']
    assert net.bottom_names['loss_b'] == ['ip_relu_0_split_1', 'label_data_1_split_1']
    assert net.bottom_names['acc'] == ['ip_relu_0_split_2', 'label_data_1_split_2']
    # Split tops share the bottom's data.
    assert net.blobs['ip_relu_0_split_2'].shares_data_with(net.blobs['ip'])


def test_split_of_a_top_that_is_also_a_loss():
    """A top with a loss weight counts as one more consumer: split top 0 carries the weight and the
    producing layer's loss weights are cleared."""
    param = insert_splits(net_param('''
        layer { name: "in" type: "Input" top: "x" }
        layer { name: "sq" type: "Power" bottom: "x" top: "y" loss_weight: 2 }
        layer { name: "use" type: "ReLU" bottom: "y" top: "z" }'''))
    names = [layer.name for layer in param.layer]
    assert names == ['in', 'sq', 'y_sq_0_split', 'use']
    assert list(param.layer[1].loss_weight) == []
    assert list(param.layer[2].top) == ['y_sq_0_split_0', 'y_sq_0_split_1']
    assert list(param.layer[2].loss_weight) == [2, 0]
    assert list(param.layer[3].bottom) == ['y_sq_0_split_1']


def test_split_backward_sums_the_consumers_gradients():
    net = build(SPLIT_NET, TRAIN)
    net.blobs['data'].data[...] = np.random.default_rng(0).standard_normal((2, 3))
    net.blobs['label'].data[...] = [1, 3]
    net.forward()
    net.backward()
    ip_diff = net.blobs['ip'].diff.copy()
    a, b = net.blobs['ip_relu_0_split_0'].diff, net.blobs['ip_relu_0_split_1'].diff
    relu_mask = net.blobs['ip'].data > 0
    np.testing.assert_allclose(ip_diff, (a + b) * relu_mask, rtol=1e-6)



TWO_SPLITS_NET = '''
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 3 dim: 4 } shape { dim: 3 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "a1" type: "TanH" bottom: "ip1" top: "a1" }
layer { name: "b1" type: "Sigmoid" bottom: "ip1" top: "b1" }
layer { name: "sum1" type: "Eltwise" bottom: "a1" bottom: "b1" top: "sum1" }
layer { name: "ip2" type: "InnerProduct" bottom: "sum1" top: "ip2"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "a2" type: "TanH" bottom: "ip2" top: "a2" }
layer { name: "b2" type: "AbsVal" bottom: "ip2" top: "b2" }
layer { name: "prod2" type: "Eltwise" bottom: "a2" bottom: "b2" top: "prod2"
        eltwise_param { operation: PROD } }
layer { name: "acc" type: "Accuracy" bottom: "prod2" bottom: "label" top: "acc" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "prod2" bottom: "label" top: "loss" }
'''


def test_split_tops_of_different_splits_share_diff_memory_without_changing_gradients(
        monkeypatch):
    """Split tops whose diffs are never alive at once share one buffer; every gradient stays what
    separate buffers give (the Accuracy-fed top, whose diff nobody writes, keeps its own)."""
    def gradients(net):
        net.blobs['data'].data[...] = np.random.default_rng(5).standard_normal((3, 4))
        net.blobs['label'].data[...] = [0, 3, 1]
        for _ in range(2):  # a second pass would see any diff left behind by the first
            for blob in net.learnable_params:
                blob.diff[...] = 0
            net.forward()
            net.backward()
        return [blob.diff.copy() for blob in net.learnable_params]
    shared = build(TWO_SPLITS_NET, TRAIN)
    groups = [group for group in shared._diff_groups if len(group) > 1]
    assert groups, 'the two Splits should share diff buffers'
    names = {shared.blob_names[blob_id] for group in groups for blob_id in group}
    assert names == {'ip1_ip1_0_split_0', 'ip1_ip1_0_split_1', 'ip2_ip2_0_split_0',
                     'ip2_ip2_0_split_1', 'prod2_prod2_0_split_1'}
    expected_blobs = [shared.blobs_list[i] for i in groups[0]]
    assert all(b.diff.base is expected_blobs[0].diff.base for b in expected_blobs)
    monkeypatch.setattr('cct.net.diff_sharing_groups', lambda *args, **kwargs: [])
    separate = build(TWO_SPLITS_NET, TRAIN)
    for a, b in zip(shared.learnable_params, separate.learnable_params):
        b.data[...] = a.data
    for got, want in zip(gradients(shared), gradients(separate)):
        np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ in-place and wiring errors
def test_in_place_layers_share_the_blob():
    net = build(SPLIT_NET)
    relu = net.layer_names.index('relu')
    assert net.bottom_vecs[relu][0] is net.top_vecs[relu][0] is net.blobs['ip']


@pytest.mark.parametrize('text, error, message', [
    ('layer { name: "y" type: "ReLU" bottom: "x" top: "y" }', NetError,
     r"^Unknown bottom blob 'x' \(layer 'y', bottom index 0\)$"),
    ('layer { name: "in" type: "Input" top: "a" input_param { shape { dim: 1 } } } '
     'layer { name: "y" type: "Eltwise" bottom: "a" bottom: "b" top: "c" }', NetError,
     r"^Unknown bottom blob 'b' \(layer 'y', bottom index 1\)$"),
    ('layer { name: "in" type: "Input" top: "a" input_param { shape { dim: 1 } } } '
     'layer { name: "r" type: "ReLU" bottom: "a" top: "b" } '
     'layer { name: "s" type: "ReLU" bottom: "a" top: "b" }', NetError,
     r"Top blob 'b' produced by multiple sources \(layer 's', top index 0\)"),
    ('layer { name: "in" type: "Input" top: "a" input_param { shape { dim: 1 } } } '
     'layer { name: "sp" type: "Split" bottom: "a" top: "a" }', NetError,
     r"Layer 'sp' \(type Split\): does not allow in-place computation"),
    ('layer { name: "in" type: "Input" top: "a" input_param { shape { dim: 1 } } } '
     'layer { name: "ip" type: "Dropout" bottom: "a" top: "b" propagate_down: true '
     'propagate_down: false }', NetError,
     r"Layer 'ip': propagate_down param must be specified either 0 or bottom_size times"),
    ('layer { name: "in" type: "Input" top: "a" input_param { shape { dim: 1 } } } '
     'layer { name: "ip" type: "ReLU" bottom: "a" top: "b" loss_weight: 1 loss_weight: 2 }',
     NetError, r'loss_weight must be unspecified or specified once per top blob'),
    ('layer { name: "in" type: "Input" top: "a" input_param { shape { dim: 1 dim: 2 } } } '
     'layer { name: "ip" type: "InnerProduct" bottom: "a" top: "b" param { } param { } param { } '
     'inner_product_param { num_output: 1 } }', NetError,
     r'too many params specified \(3 ParamSpecs, 2 param blobs\)'),
    ('layer { name: "conv9" type: "Convoluton" }', UnknownLayerError,
     r"^Unknown layer type: Convoluton \(layer 'conv9'\); known types: AbsVal, Accuracy, "),
    # Shape helpers' plain ValueErrors come out naming the layer.
    ('layer { name: "in" type: "Input" top: "a" input_param { shape { dim: 1 dim: 2 } } } '
     'layer { name: "ip" type: "InnerProduct" bottom: "a" top: "b" '
     'inner_product_param { num_output: 1 axis: 7 } }', NetError,
     r"^Layer 'ip' \(type InnerProduct\): axis 7 out of range for 2-D blob"),
    ('layer { name: "in" type: "Input" top: "a" input_param { shape { dim: 1 dim: 1 dim: 4 '
     'dim: 4 } } } layer { name: "pool" type: "Pooling" bottom: "a" top: "b" '
     'pooling_param { kernel_size: 9 } }', NetError,
     r"^Layer 'pool' \(type Pooling\): blob dimensions must be non-negative, got "
     r'\(1, 1, -4, -4\)$'),
])
def test_wiring_errors(text, error, message):
    with pytest.raises(error, match=message):
        build(text)


# ------------------------------------------------------------------ registry
def test_registry_maps_v1_names_to_the_same_classes():
    for v1, v2 in (('CONVOLUTION', 'Convolution'), ('SOFTMAX_LOSS', 'SoftmaxWithLoss'),
                   ('LRN', 'LRN'), ('CONCAT', 'Concat'), ('INNER_PRODUCT', 'InnerProduct'),
                   ('TANH', 'TanH'), ('IM2COL', 'Im2col'), ('DUMMY_DATA', 'DummyData')):
        assert layer_class(v1) is layer_class(v2)
        assert layer_class(v2).type == v2


def test_unknown_type_lists_every_known_type():
    with pytest.raises(UnknownLayerError) as error:
        layer_class('Nope', 'mine')
    known = str(error.value).split('known types: ')[1].split(', ')
    assert known == layer_type_list() and 'LRN' in known and 'Concat' in known
    assert len(known) > 50


def test_duplicate_registration_raises():
    with pytest.raises(RuntimeError, match="layer type 'ReLU' registered twice"):
        @register('ReLU')
        class AnotherReLU(Layer):
            pass
    assert layer_class('ReLU').__name__ == 'ReLULayer'


# ------------------------------------------------------------------ loss weights
LOSS_NET = '''
force_backward: true
layer { name: "data" type: "Input" top: "x" top: "label"
        input_param { shape { dim: 4 dim: 5 } shape { dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" %s }
layer { name: "reg" type: "Power" bottom: "ip" top: "reg" %s }
'''


def run_loss_net(loss_weight='', reg_weight=''):
    from cct import rng
    rng.set_random_seed(5)
    net = build(LOSS_NET % (loss_weight, reg_weight), TRAIN)
    net.blobs['x'].data[...] = np.linspace(-1, 1, 20).reshape(4, 5)
    net.blobs['label'].data[...] = [0, 2, 1, 2]
    loss = net.forward_backward()
    return net, loss


def test_loss_weight_defaults():
    net, loss = run_loss_net()
    weights = dict(zip(net.blob_names, net.loss_weight_by_blob))
    assert weights['loss'] == 1.0                       # loss layers default to 1
    assert weights['reg'] == 0.0 and weights['ip_ip_0_split_0'] == 0.0   # others to 0
    assert loss == pytest.approx(float(net.blobs['loss'].data))
    assert net.outputs == ['loss', 'reg']


def test_loss_weight_scales_loss_and_gradients():
    """Caffe's TestLossWeight: the loss and every gradient scale with the weight."""
    base, loss = run_loss_net()
    scaled, scaled_loss = run_loss_net('loss_weight: 2.5')
    assert scaled_loss == pytest.approx(2.5 * loss, rel=1e-6)
    np.testing.assert_allclose(scaled.params['ip'][0].diff, 2.5 * base.params['ip'][0].diff,
                               rtol=1e-5)
    np.testing.assert_allclose(scaled.blobs['x'].diff, 2.5 * base.blobs['x'].diff, rtol=1e-5)


def test_any_top_becomes_a_loss_with_a_weight():
    net, loss = run_loss_net('loss_weight: 0', 'loss_weight: 0.5')
    assert loss == pytest.approx(0.5 * float(net.blobs['reg'].data.sum(dtype=np.float64)),
                                 rel=1e-6)
    # d(0.5 * sum(ip)) / d(ip) = 0.5 everywhere, so the bias gradient is 0.5 per row.
    np.testing.assert_allclose(net.params['ip'][1].diff, 0.5 * 4, rtol=1e-6)


# ------------------------------------------------------------------ which layers run backward
BACKWARD_NET = '''
layer { name: "data" type: "Input" top: "x" top: "label"
        input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
layer { name: "frozen" type: "InnerProduct" bottom: "x" top: "h"
        param { lr_mult: 0 } param { lr_mult: 0 } inner_product_param { num_output: 3 } }
layer { name: "relu" type: "ReLU" bottom: "h" top: "h" }
layer { name: "learn" type: "InnerProduct" bottom: "h" top: "out" inner_product_param {
        num_output: 2 } }
layer { name: "side" type: "InnerProduct" bottom: "h" top: "unused" inner_product_param {
        num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "out" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "out" bottom: "label" top: "acc" }
'''


def need_backward(net):
    return {name: flag for name, flag in zip(net.layer_names, net.layer_need_backward)
            if not name.endswith('_split')}


def test_need_backward_analysis():
    net = build(BACKWARD_NET, TRAIN)
    assert need_backward(net) == {'data': False, 'frozen': False, 'relu': False, 'learn': True,
                                  'side': False, 'loss': True, 'acc': False}
    assert net.layers[net.layer_names.index('frozen')].param_propagate_down == [False, False]
    loss = net.layer_names.index('loss')
    assert net.bottom_need_backward[loss] == [True, False]      # never the label


def test_propagate_down_false_stops_the_gradient():
    text = BACKWARD_NET.replace('param { lr_mult: 0 } param { lr_mult: 0 } ', '').replace(
        'bottom: "out" bottom: "label" top: "loss"',
        'bottom: "out" bottom: "label" top: "loss" propagate_down: false propagate_down: false')
    net = build(text, TRAIN)
    # The loss layer keeps its flag (Caffe calls its backward with nothing to propagate), but no
    # layer below it receives a gradient, so none of them runs backward.
    flags = need_backward(net)
    assert flags.pop('loss') and not any(flags.values())
    assert net.bottom_need_backward[net.layer_names.index('loss')] == [False, False]


def test_force_backward_reaches_every_bottom_but_the_label():
    net = build('force_backward: true\n' + BACKWARD_NET, TRAIN)
    assert all(need_backward(net).values())
    assert net.bottom_need_backward[net.layer_names.index('loss')] == [True, False]
    assert net.layers[net.layer_names.index('frozen')].param_propagate_down == [True, True]
    assert net.blob_need_backward[net.blob_names.index('x')]


def test_net_gradient_matches_finite_differences():
    """A whole net (split, in-place ReLU, two losses) against central differences in float64."""
    # Without the Accuracy layer: forcing a gradient through it is an error (Caffe aborts).
    text = SPLIT_NET.split('layer { name: "acc"')[0] + 'force_backward: true'
    net = build(text, TRAIN, dtype=np.float64)
    gen = np.random.default_rng(3)
    x = gen.standard_normal((2, 3))
    net.blobs['label'].data[...] = [0, 3]

    def loss_at(values):
        net.blobs['data'].data[...] = values
        return net.forward_from_to()
    loss_at(x)
    net.backward_from_to()
    analytic = net.blobs['data'].diff.copy()
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = 1e-6
        numeric[index] = (loss_at(x + step) - loss_at(x - step)) / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------ parameter sharing
SHARED_NET = '''
force_backward: true
layer { name: "data" type: "Input" top: "a" top: "b"
        input_param { shape { dim: 2 dim: %d } shape { dim: 2 dim: %d } } }
layer { name: "ip_a" type: "InnerProduct" bottom: "a" top: "ya"
        param { name: "w" %s } param { name: "%s" }
        inner_product_param { num_output: %d weight_filler { type: "gaussian" } } }
layer { name: "ip_b" type: "InnerProduct" bottom: "b" top: "yb"
        param { name: "w" %s } param { name: "%s" }
        inner_product_param { num_output: %d weight_filler { type: "gaussian" } } }
layer { name: "join" type: "Concat" bottom: "ya" bottom: "yb" top: "y" }
layer { name: "loss" type: "Power" bottom: "y" top: "loss" loss_weight: 1 }
'''


def shared_net(k_a=3, k_b=3, out_a=4, out_b=4, spec_a='', spec_b='', biases=('bias', 'bias')):
    return build(SHARED_NET % (k_a, k_b, spec_a, biases[0], out_a, spec_b, biases[1], out_b),
                 TRAIN)


def test_shared_params_are_one_blob_and_gradients_accumulate():
    net = shared_net()
    w_a, w_b = net.params['ip_a'][0], net.params['ip_b'][0]
    assert w_a.shares_data_with(w_b)
    assert len(net.learnable_params) == 2 and net.param_owners == [-1, -1, 0, 1]
    gen = np.random.default_rng(1)
    a, b = gen.standard_normal((2, 3)), gen.standard_normal((2, 3))
    net.blobs['a'].data[...] = a
    net.blobs['b'].data[...] = b
    net.forward()
    net.clear_param_diffs()
    net.backward()
    # loss = sum(W a + W b + 2 bias) over the batch: dW = sum over rows of (a + b).
    expected = np.tile((a + b).sum(axis=0), (4, 1))
    np.testing.assert_allclose(w_a.diff, expected, rtol=1e-5)
    np.testing.assert_allclose(w_b.diff, expected, rtol=1e-5)
    np.testing.assert_allclose(net.params['ip_a'][1].diff, 4.0, rtol=1e-6)
    net.update()
    np.testing.assert_array_equal(w_a.data, w_b.data)


def test_strict_sharing_needs_equal_shapes_permissive_equal_counts():
    with pytest.raises(NetError, match=r"cannot share param 'w' owned by layer 'ip_a': shape "
                                       r'mismatch. Owner layer param shape is 4 3 \(12\); '
                                       r'sharing layer expects shape 3 4 \(12\)'):
        shared_net(k_a=3, k_b=4, out_a=4, out_b=3, biases=('ba', 'bb'))
    with pytest.raises(NetError, match='count mismatch'):
        shared_net(k_a=3, k_b=5, out_a=4, out_b=3, spec_b='share_mode: PERMISSIVE',
                   biases=('ba', 'bb'))
    net = shared_net(k_a=3, k_b=4, out_a=4, out_b=3, spec_b='share_mode: PERMISSIVE',
                     biases=('ba', 'bb'))
    assert net.params['ip_b'][0].data.shape == (3, 4)
    assert net.params['ip_b'][0].shares_data_with(net.params['ip_a'][0])


def test_shared_lr_mult_must_agree_or_is_adopted():
    with pytest.raises(NetError, match="shared param 'w' has mismatched lr_mult"):
        shared_net(spec_a='lr_mult: 1', spec_b='lr_mult: 2')
    net = shared_net(spec_b='lr_mult: 3 decay_mult: 0.5')
    assert (net.params_lr[0], net.has_params_lr[0]) == (3, True)
    assert (net.params_weight_decay[0], net.has_params_decay[0]) == (0.5, True)


# ------------------------------------------------------------------ real nets
def test_lenet_train_test_phases(shared):
    """The shipped train/test net: each phase keeps its own Data layer; Accuracy only in TEST."""
    from cct.io import read_net_text
    param = read_net_text(os.path.join(shared, 'nets', 'lenet_train_test.prototxt'))
    for phase, sources in ((TRAIN, ['examples/mnist/mnist_train_lmdb']),
                           (TEST, ['examples/mnist/mnist_test_lmdb'])):
        param.state.phase = phase
        kept = filter_net(param).layer
        assert [layer.data_param.source for layer in kept if layer.type == 'Data'] == sources
        assert any(layer.type == 'Accuracy' for layer in kept) is (phase == TEST)


SIZE_HEAD = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: %s } } }\n'


@pytest.mark.parametrize('dims, layer, message', [
    ('1000000000 dim: 3 dim: 227 dim: 227', '',
     "Layer 'data' (type Input): out of memory setting up top blob 'data': could not allocate "
     '618348000000000 bytes (575881.5 GiB) for shape 1000000000 3 227 227 (154587000000000)'),
    ('1 dim: 3 dim: 227 dim: 227',
     'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
     'inner_product_param { num_output: 2000000000 } }',
     "Layer 'ip' (type InnerProduct): out of memory setting up param blob 0: could not allocate "
     '1236696000000000 bytes (1151762.9 GiB) for shape 2000000000 154587 (309174000000000)'),
])
def test_blobs_too_large_for_memory_name_layer_blob_and_bytes(tmp_path, dims, layer, message):
    from cct.errors import OutOfMemoryError
    path = tmp_path / 'huge.prototxt'
    path.write_text(SIZE_HEAD % dims + layer)
    with pytest.raises(OutOfMemoryError) as raised:
        Net(str(path), caffe_pb2.TEST)
    assert str(raised.value) == message
    assert isinstance(raised.value, MemoryError)


def test_plain_errors_from_a_layer_name_it(tmp_path):
    """A ValueError a layer's own arithmetic raises (here numpy's, from an empty channel axis) comes
    out as a NetError naming the layer and the pass."""
    from cct.errors import NetError
    path = tmp_path / 'empty.prototxt'
    path.write_text(SIZE_HEAD % '2 dim: 0 dim: 4' +
                    'layer { name: "prob" type: "Softmax" bottom: "data" top: "prob" }\n')
    net = Net(str(path), caffe_pb2.TEST)
    with pytest.raises(NetError, match=r"^Layer 'prob' \(type Softmax\) \(forward\): "):
        net.forward()


WEIGHTS_NET = ('name: "%s"\nlayer { name: "data" type: "Input" top: "data" input_param { shape { '
               'dim: 1 dim: 4 } } }\nlayer { name: "%s" type: "InnerProduct" bottom: "data" '
               'top: "out" inner_product_param { num_output: 3 } }\n')


@pytest.mark.parametrize('suffix', ['.caffemodel', '.caffemodel.h5'])
def test_weights_that_fill_no_layer_are_warned_about(tmp_path, suffix):
    source, target = tmp_path / 'source.prototxt', tmp_path / 'target.prototxt'
    source.write_text(WEIGHTS_NET % ('source', 'ip1'))
    target.write_text(WEIGHTS_NET % ('target', 'fc'))
    weights = str(tmp_path / ('source' + suffix))
    trained = Net(str(source), caffe_pb2.TEST)
    if suffix.endswith('.h5'):
        from cct.io.hdf5 import save_weights_hdf5
        save_weights_hdf5(trained, weights)
    else:
        trained.save(weights)
    from cct.testing import captured_log
    with captured_log(logging.WARNING) as warnings:
        Net(str(source), caffe_pb2.TEST).copy_from(weights)
    assert warnings == []
    with captured_log(logging.WARNING) as warnings:
        Net(str(target), caffe_pb2.TEST).copy_from(weights)
    assert warnings == ["%s: no layer with weights matched a layer of net 'target' by name (the "
                        'file has 1 layers with weights, e.g. ip1): the net keeps its initial '
                        'weights' % weights]
