"""pycaffe's Net surface (cct/net_api.py): attributes, forward/backward, batching, weight sharing and
saving, callbacks and Blob behaviour, on small nets whose results are computed by hand here."""
import importlib.util

import numpy as np
import pytest

import cct as caffe
from cct.blob import Blob
from cct.errors import CctError, NetError, WeightsError

TRAIN_NET = """name: 'tiny' force_backward: true
layer { name: 'data' type: 'Input' top: 'data' top: 'label'
        input_param { shape { dim: 4 dim: 3 dim: 2 dim: 2 } shape { dim: 4 } } }
layer { name: 'ip1' type: 'InnerProduct' bottom: 'data' top: 'ip1'
        inner_product_param { num_output: 5 weight_filler { type: 'gaussian' std: 0.5 }
                              bias_filler { type: 'constant' value: 0.1 } } }
layer { name: 'relu1' type: 'ReLU' bottom: 'ip1' top: 'ip1' }
layer { name: 'ip2' type: 'InnerProduct' bottom: 'ip1' top: 'ip2'
        inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 0.5 } } }
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip2' bottom: 'label' top: 'loss' }
"""

LINEAR_NET = """name: 'linear'
layer { name: 'data' type: 'Input' top: 'data' input_param { shape { dim: 4 dim: 6 } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
        inner_product_param { num_output: 3 bias_term: false
                              weight_filler { type: 'gaussian' std: 1 } } }
layer { name: 'prob' type: 'Softmax' bottom: 'ip' top: 'prob' }
"""


def write(tmp_path, text, name='net.prototxt'):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def net(tmp_path):
    caffe.set_random_seed(3)
    return caffe.Net(write(tmp_path, TRAIN_NET), caffe.TRAIN)


@pytest.fixture
def linear(tmp_path):
    caffe.set_random_seed(5)
    return caffe.Net(write(tmp_path, LINEAR_NET), caffe.TEST)


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_blobs_is_ordered_by_creation_and_holds_blobs(net):
    assert list(net.blobs) == ['data', 'label', 'ip1', 'ip2', 'loss']
    assert all(isinstance(b, Blob) for b in net.blobs.values())
    assert net.blobs is net.blobs  # built once, as pycaffe caches it


def test_params_maps_layers_with_params_to_their_blobs(net):
    assert list(net.params) == ['ip1', 'ip2']
    assert [p.shape for p in net.params['ip1']] == [(5, 12), (5,)]
    assert [p.shape for p in net.params['ip2']] == [(3, 5), (3,)]
    np.testing.assert_array_equal(net.params['ip1'][1].data, np.full(5, 0.1, np.float32))


def test_layer_lists_and_names(net):
    assert [layer.type for layer in net.layers] == ['Input', 'InnerProduct', 'ReLU',
                                                   'InnerProduct', 'SoftmaxWithLoss']
    assert net._layer_names == ['data', 'ip1', 'relu1', 'ip2', 'loss']
    assert list(net.layer_dict) == net._layer_names
    assert net.layer_dict['ip2'] is net.layers[3]
    assert net._blob_names == list(net.blobs)
    assert net._blobs == list(net.blobs.values())
    assert net.layers[1].blobs[0] is net.params['ip1'][0]


def test_inputs_outputs_and_indices(net):
    assert net.inputs == ['data', 'label']
    assert net.outputs == ['loss']
    assert net._inputs == [0, 1]
    assert net._outputs == [4]


def test_loss_weights(net):
    assert net.blob_loss_weights == {'data': 0, 'label': 0, 'ip1': 0, 'ip2': 0, 'loss': 1}
    assert net._blob_loss_weights == [0, 0, 0, 0, 1]


def test_top_and_bottom_names_and_ids(net):
    assert net.top_names['relu1'] == ['ip1']
    assert net.bottom_names['loss'] == ['ip2', 'label']
    assert net.top_names['data'] == ['data', 'label']
    assert net.bottom_names['data'] == []
    assert net._top_ids(2) == [2] and net._bottom_ids(2) == [2]
    assert net._bottom_ids(4) == [3, 1]


def test_blob_shape_count_and_legacy_dims(net):
    data, label = net.blobs['data'], net.blobs['label']
    assert data.shape == (4, 3, 2, 2) and data.count == 48
    assert (data.num, data.channels, data.height, data.width) == (4, 3, 2, 2)
    assert label.shape == (4,) and (label.num, label.channels, label.height, label.width) == \
        (4, 1, 1, 1)
    assert net.blobs['loss'].shape == () and net.blobs['loss'].count == 1


def test_blob_data_and_diff_are_writable_views(linear):
    blob = linear.blobs['data']
    blob.data[...] = 2.0
    assert blob.data.dtype == np.float32 and (blob.data == 2).all()
    blob.diff[1] = 3.0
    assert blob.diff[1].sum() == 18 and blob.diff[0].sum() == 0
    view = blob.data
    view[0, 0] = 7
    assert blob.data[0, 0] == 7


def test_blob_reshape_then_net_reshape_propagates(linear):
    linear.blobs['data'].reshape(2, 6)
    linear.reshape()
    assert linear.blobs['ip'].shape == (2, 3)
    assert linear.blobs['prob'].shape == (2, 3)
    x = np.arange(12, dtype=np.float32).reshape(2, 6) / 10
    out = linear.forward(data=x)
    weights = linear.params['ip'][0].data
    np.testing.assert_allclose(out['prob'], softmax(x @ weights.T), rtol=1e-5)


def test_forward_with_inputs_returns_output_views(linear):
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    out = linear.forward(data=x)
    assert set(out) == {'prob'}
    assert np.shares_memory(out['prob'], linear.blobs['prob'].data)
    weights = linear.params['ip'][0].data
    np.testing.assert_allclose(out['prob'], softmax(x @ weights.T), rtol=1e-5)


def test_forward_extra_blobs_start_and_end(linear):
    x = np.ones((4, 6), np.float32)
    out = linear.forward(blobs=['ip'], data=x)
    assert set(out) == {'prob', 'ip'}
    linear.blobs['ip'].data[...] = 0
    out = linear.forward(start='prob')
    np.testing.assert_allclose(out['prob'], np.full((4, 3), 1 / 3), rtol=1e-6)
    linear.blobs['prob'].data[...] = -1
    out = linear.forward(end='ip')
    assert set(out) == {'ip'}
    assert (linear.blobs['prob'].data == -1).all()  # the layer after `end` did not run


def test_forward_rejects_wrong_inputs(linear):
    with pytest.raises(ValueError, match='do not match net inputs'):
        linear.forward(wrong=np.zeros((4, 6)))
    with pytest.raises(ValueError, match='not batch sized'):
        linear.forward(data=np.zeros((3, 6)))
    with pytest.raises(KeyError, match='Unknown layer name'):
        linear.forward(start='nope')


def test_backward_from_output_diffs(tmp_path):
    text = LINEAR_NET.replace("layer { name: 'prob' type: 'Softmax' bottom: 'ip' top: 'prob' }",
                              '').replace("name: 'linear'", "name: 'linear' force_backward: true")
    net = caffe.Net(write(tmp_path, text), caffe.TEST)
    grad = np.arange(12, dtype=np.float32).reshape(4, 3)
    net.forward(data=np.ones((4, 6), np.float32))
    diffs = net.backward(ip=grad)
    assert set(diffs) == {'data'}
    weights = net.params['ip'][0].data
    np.testing.assert_allclose(diffs['data'], grad @ weights, rtol=1e-5)
    np.testing.assert_allclose(net.params['ip'][0].diff, grad.T @ np.ones((4, 6)), rtol=1e-5)
    with pytest.raises(ValueError, match='do not match net outputs'):
        net.backward(data=grad)
    assert set(net.backward(diffs=['ip'], end='ip')) == {'data', 'ip'}


def test_forward_backward_through_loss_gives_softmax_gradient(net):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    labels = np.array([0, 2, 1, 2], np.float32)
    loss = net.forward(data=x, label=labels)['loss']
    w1, b1 = (p.data for p in net.params['ip1'])
    w2, b2 = (p.data for p in net.params['ip2'])
    hidden = np.maximum(x.reshape(4, 12) @ w1.T + b1, 0)
    prob = softmax(hidden @ w2.T + b2)
    expected = -np.log(prob[np.arange(4), labels.astype(int)]).mean()
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    net.backward()
    onehot = np.eye(3)[labels.astype(int)]
    np.testing.assert_allclose(net.params['ip2'][0].diff, ((prob - onehot) / 4).T @ hidden,
                               rtol=1e-4, atol=1e-6)
    net.clear_param_diffs()
    assert all((p.diff == 0).all() for blobs in net.params.values() for p in blobs)


def test_forward_all_batches_pads_and_strips(linear):
    x = np.random.default_rng(2).standard_normal((10, 6)).astype(np.float32)
    out = linear.forward_all(blobs=['ip'], data=x)
    weights = linear.params['ip'][0].data
    assert out['prob'].shape == (10, 3) and out['ip'].shape == (10, 3)
    np.testing.assert_allclose(out['prob'], softmax(x @ weights.T), rtol=1e-5)
    assert not np.shares_memory(out['prob'], linear.blobs['prob'].data)


def test_forward_backward_all(tmp_path):
    text = LINEAR_NET.replace("name: 'linear'", "name: 'linear' force_backward: true")
    net = caffe.Net(write(tmp_path, text), caffe.TEST)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 6)).astype(np.float32)
    grad = rng.standard_normal((6, 3)).astype(np.float32)
    outs, diffs = net.forward_backward_all(data=x, prob=grad)
    weights = net.params['ip'][0].data
    prob = softmax(x @ weights.T)
    np.testing.assert_allclose(outs['prob'], prob, rtol=1e-5)
    # Softmax's Jacobian-vector product, then the InnerProduct's.
    dlogits = prob * (grad - (grad * prob).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(diffs['data'], dlogits @ weights, rtol=1e-4, atol=1e-6)
    assert diffs['data'].shape == (6, 6)


def test_callbacks_see_every_layer_in_order(net):
    calls = []
    net.before_forward(lambda i: calls.append(('bf', i)))
    net.after_forward(lambda i: calls.append(('af', i)))
    net.before_backward(lambda i: calls.append(('bb', i)))
    net.after_backward(lambda i: calls.append(('ab', i)))
    net.forward()
    assert calls == [(kind, i) for i in range(5) for kind in ('bf', 'af')]
    del calls[:]
    net.backward()
    assert calls == [(kind, i) for i in range(4, -1, -1) for kind in ('bb', 'ab')]


def test_save_and_copy_from_round_trip(net, tmp_path):
    path = str(tmp_path / 'w.caffemodel')
    net.save(path)
    caffe.set_random_seed(99)
    other = caffe.Net(write(tmp_path, TRAIN_NET, 'other.prototxt'), caffe.TRAIN)
    assert not np.array_equal(other.params['ip1'][0].data, net.params['ip1'][0].data)
    other.copy_from(path)
    for name in net.params:
        for mine, theirs in zip(net.params[name], other.params[name]):
            np.testing.assert_array_equal(mine.data, theirs.data)


def test_both_constructor_forms_load_weights(net, tmp_path):
    model, weights = write(tmp_path, TRAIN_NET, 'again.prototxt'), str(tmp_path / 'w.caffemodel')
    net.save(weights)
    old_style = caffe.Net(model, weights, caffe.TEST)
    new_style = caffe.Net(model, caffe.TEST, weights=weights)
    for other in (old_style, new_style):
        assert other.phase == caffe.TEST
        np.testing.assert_array_equal(other.params['ip2'][0].data, net.params['ip2'][0].data)


def test_share_with_shares_param_memory(net, tmp_path):
    other = caffe.Net(write(tmp_path, TRAIN_NET, 'other.prototxt'), caffe.TEST)
    other.share_with(net)
    for name in net.params:
        for mine, theirs in zip(net.params[name], other.params[name]):
            assert np.shares_memory(mine.data, theirs.data)
    net.params['ip1'][0].data[0, 0] = 42
    assert other.params['ip1'][0].data[0, 0] == 42


def test_share_with_rejects_shape_mismatch(net, tmp_path):
    other = caffe.Net(write(tmp_path, TRAIN_NET.replace('num_output: 5', 'num_output: 6'),
                            'other.prototxt'), caffe.TRAIN)
    with pytest.raises(WeightsError, match="Cannot share param 0 weights from layer 'ip1'"):
        other.share_with(net)


def test_set_input_arrays_needs_memory_data_first(net):
    with pytest.raises(NetError, match='first layer is a MemoryDataLayer'):
        net.set_input_arrays(np.zeros((4, 3, 2, 2), np.float32), np.zeros(4, np.float32))


def level_stage_net(tmp_path):
    ip = ("layer { name: '%s' type: 'InnerProduct' bottom: 'data' top: '%s' "
          "inner_product_param { num_output: 1 } %s }")
    rules = [('NoLevel', ''), ('Level0Only', 'include { min_level: 0 max_level: 0 }'),
             ('Level1Only', 'include { min_level: 1 max_level: 1 }'),
             ('Level>=0', 'include { min_level: 0 }'), ('Level>=1', 'include { min_level: 1 }'),
             ('A', "include { stage: 'A' }"), ('B', "include { stage: 'B' }"),
             ('AorB', "include { stage: 'A' } include { stage: 'B' }"),
             ('AandB', "include { stage: 'A' stage: 'B' }")]
    text = ("layer { name: 'data' type: 'Input' top: 'data' "
            "input_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }\n" +
            '\n'.join(ip % (name, name, rule) for name, rule in rules))
    return write(tmp_path, text, 'levels.prototxt')


@pytest.mark.parametrize('kwargs, expected', [
    ({}, ['NoLevel', 'Level0Only', 'Level>=0']),
    ({'level': 1}, ['NoLevel', 'Level1Only', 'Level>=0', 'Level>=1']),
    ({'stages': ['A']}, ['NoLevel', 'Level0Only', 'Level>=0', 'A', 'AorB']),
    ({'stages': ['B']}, ['NoLevel', 'Level0Only', 'Level>=0', 'B', 'AorB']),
    ({'stages': ['A', 'B']}, ['NoLevel', 'Level0Only', 'Level>=0', 'A', 'B', 'AorB', 'AandB']),
])
def test_constructor_level_and_stages(tmp_path, kwargs, expected):
    """pycaffe's TestLevels/TestStages: Net(file, phase, level=..., stages=...)."""
    net = caffe.Net(level_stage_net(tmp_path), caffe.TEST, **kwargs)
    assert [name for name in net.blobs if 'data' not in name] == expected  # no splits


FAKE_MEMORY_DATA = '''
import cct


class RecordingMemoryData(cct.Layer):
    """Stands in for MemoryData: records what set_input_arrays hands to reset()."""
    type = 'MemoryData'

    def setup(self, bottom, top):
        self.received = None

    def reshape(self, bottom, top):
        memory = self.param.memory_data_param
        top[0].reshape(memory.batch_size, memory.channels, memory.height, memory.width)
        top[1].reshape(memory.batch_size)

    def forward(self, bottom, top):
        pass

    def reset(self, data, labels):
        self.received = (data, labels)
'''


def test_set_input_arrays_checks_and_hands_arrays_to_reset(tmp_path, monkeypatch):
    (tmp_path / 'cct_test_fake_memory.py').write_text(FAKE_MEMORY_DATA)
    monkeypatch.syspath_prepend(str(tmp_path))
    net = caffe.Net(write(tmp_path, """
        layer { name: 'data' type: 'Python' top: 'data' top: 'label'
                python_param { module: 'cct_test_fake_memory' layer: 'RecordingMemoryData' }
                memory_data_param { batch_size: 2 channels: 3 height: 4 width: 5 } }"""),
        caffe.TRAIN)
    data = np.zeros((6, 3, 4, 5), np.float32)
    net.set_input_arrays(data, np.arange(6, dtype=np.float32))
    received_data, received_labels = net.layers[0].received
    assert received_data is data
    assert received_labels.shape == (6, 1, 1, 1) and received_labels.flags.c_contiguous
    np.testing.assert_array_equal(received_labels.ravel(), np.arange(6))
    labels = np.zeros(6, np.float32)
    for bad_data, bad_labels, message in [
            (data[:, :, :, ::-1], labels, 'data array must be C contiguous'),
            (data.astype(np.float64), labels, 'data array must be float32'),
            (data[0], labels, 'data array must be 4-d'),
            (np.zeros((6, 2, 4, 5), np.float32), labels, 'wrong number of channels'),
            (np.zeros((6, 3, 4, 4), np.float32), labels, 'wrong width'),
            (data, np.zeros(5, np.float32), 'same first dimension'),
            (data[:5], np.zeros(5, np.float32), 'multiple of batch size'),
            (data, np.zeros((6, 2, 1, 1), np.float32), 'labels array has wrong number')]:
        with pytest.raises(ValueError, match=message):
            net.set_input_arrays(np.ascontiguousarray(bad_data)
                                 if 'contiguous' not in message else bad_data, bad_labels)


def test_save_hdf5_and_load_hdf5(net, tmp_path):
    """Round trip through .caffemodel.h5 where cct's HDF5 helper exists; a plain CctError
    otherwise (never a bare ImportError)."""
    path = str(tmp_path / 'w.caffemodel.h5')
    if importlib.util.find_spec('cct.io.hdf5') is None:
        with pytest.raises(CctError, match='HDF5 weight files'):
            net.save_hdf5(path)
        return
    net.save_hdf5(path)
    caffe.set_random_seed(123)
    other = caffe.Net(write(tmp_path, TRAIN_NET, 'other.prototxt'), caffe.TRAIN)
    other.load_hdf5(path)
    for name in net.params:
        for mine, theirs in zip(net.params[name], other.params[name]):
            np.testing.assert_array_equal(mine.data, theirs.data)


def test_backward_start_and_index_based_passes(net):
    """``backward(start=...)`` begins at that layer (the loss diff above it stays untouched);
    ``_forward``/``_backward`` take layer indices and ``_forward`` returns the weighted loss."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    labels = np.array([1, 0, 2, 1], np.float32)
    loss = net.forward(data=x, label=labels)['loss'].copy()
    net.backward()
    full = net.blobs['data'].diff.copy()
    net.blobs['ip2'].diff[...] = 0
    assert set(net.backward(start='ip2')) == {'data', 'label'}
    np.testing.assert_array_equal(net.blobs['data'].diff, 0)  # ip2's top diff was zeroed
    net.blobs['data'].diff[...] = 7
    assert net._forward(0, len(net.layers) - 1) == pytest.approx(float(loss), rel=1e-6)
    net.blobs['data'].diff[...] = 7
    net._backward(len(net.layers) - 1, 0)
    np.testing.assert_allclose(net.blobs['data'].diff, full, rtol=1e-6)
    net.blobs['data'].diff[...] = 7
    net._backward(len(net.layers) - 1, 2)  # stops above ip1: the input diff is not written
    assert (net.blobs['data'].diff == 7).all()
    assert net._forward(1, 3) == 0  # no loss layer in the range


def test_blobs_and_layers_include_caffes_split_blobs(tmp_path):
    """A top read by two layers gets a Split layer; pycaffe's dicts list it and its blobs under
    Caffe's names, in creation order."""
    net = caffe.Net(write(tmp_path, TRAIN_NET + """
        layer { name: 'accuracy' type: 'Accuracy' bottom: 'ip2' bottom: 'label'
                top: 'accuracy' }"""), caffe.TEST)
    assert list(net.blobs) == ['data', 'label', 'label_data_1_split_0', 'label_data_1_split_1',
                               'ip1', 'ip2', 'ip2_ip2_0_split_0', 'ip2_ip2_0_split_1', 'loss',
                               'accuracy']
    assert net._layer_names == ['data', 'label_data_1_split', 'ip1', 'relu1', 'ip2',
                                'ip2_ip2_0_split', 'loss', 'accuracy']
    assert net.layer_dict['ip2_ip2_0_split'].type == 'Split'
    assert net.bottom_names['accuracy'] == ['ip2_ip2_0_split_1', 'label_data_1_split_1']
    assert net.outputs == ['accuracy', 'loss'] and list(net.params) == ['ip1', 'ip2']
    out = net.forward(data=np.zeros((4, 3, 2, 2), np.float32), label=np.zeros(4, np.float32))
    assert set(out) == {'accuracy', 'loss'}
    np.testing.assert_array_equal(net.blobs['ip2_ip2_0_split_1'].data, net.blobs['ip2'].data)
