"""The layer catalogue (cct/layers/base.py's registry): every type the layer issue and Caffe's surface
list (§1b) names is registered, every V1 enum name maps to a registered class, and the Caffe types
cct does not implement (RNN, LSTM, LSTMUnit, WindowData) and the options it does not support
(N-D convolution) fail while the net is built, naming the layer and what is missing."""
import pytest

from cct.errors import NetError, UnknownLayerError
from cct.io import parse_text, upgrade_net
from cct.layers.base import UNSUPPORTED_TYPES, V1_TYPE_NAMES, layer_class, layer_type_list
from cct.net import Net
from cct.proto import caffe_pb2
from cct.testing import captured_log, make_layer

# The list, section by section, plus the other types Caffe registers (Clip, Swish, the data
# layers, Python, HDF5Output).
CATALOGUE = {
    'vision': ['Convolution', 'Deconvolution', 'Im2col', 'Pooling', 'SPP', 'InnerProduct', 'LRN',
               'Crop'],
    'activations': ['ReLU', 'PReLU', 'ELU', 'Sigmoid', 'TanH', 'AbsVal', 'BNLL', 'Power', 'Exp',
                    'Log', 'Threshold', 'Dropout', 'Clip', 'Swish'],
    'normalisation': ['BatchNorm', 'Scale', 'Bias', 'MVN'],
    'structure': ['Softmax', 'Eltwise', 'Concat', 'Slice', 'Split', 'Flatten', 'Reshape', 'Tile',
                  'Reduction', 'ArgMax', 'Embed', 'Silence', 'Filter', 'BatchReindex',
                  'Parameter', 'Input', 'DummyData'],
    'losses': ['SoftmaxWithLoss', 'EuclideanLoss', 'SigmoidCrossEntropyLoss', 'HingeLoss',
               'InfogainLoss', 'ContrastiveLoss', 'MultinomialLogisticLoss', 'Accuracy'],
    'data': ['Data', 'ImageData', 'HDF5Data', 'MemoryData', 'HDF5Output', 'Python'],
}


@pytest.mark.parametrize('section', sorted(CATALOGUE))
def test_every_listed_type_is_registered(section):
    missing = [name for name in CATALOGUE[section] if name not in layer_type_list()]
    assert missing == []
    for name in CATALOGUE[section]:
        assert layer_class(name).type == name


def test_every_v1_enum_name_is_registered_or_named_unsupported():
    for v1, v2 in V1_TYPE_NAMES.items():
        if v2 in UNSUPPORTED_TYPES:
            with pytest.raises(UnknownLayerError, match='Unsupported layer type: %s' % v1):
                layer_class(v1, 'old')
        else:
            assert layer_class(v1) is layer_class(v2), v1


def net_with(layer_text):
    text = ('layer { name: "in" type: "Input" top: "x" top: "cont" '
            'input_param { shape { dim: 3 dim: 2 dim: 4 } shape { dim: 3 dim: 2 } } } '
            + layer_text)
    return Net(parse_text(text, caffe_pb2.NetParameter(), '<net>'), caffe_pb2.TRAIN)


@pytest.mark.parametrize('layer_text, message', [
    ('layer { name: "rnn1" type: "RNN" bottom: "x" bottom: "cont" top: "h" '
     'recurrent_param { num_output: 5 } }',
     r"Unsupported layer type: RNN \(layer 'rnn1'\): Caffe's recurrent layers"),
    ('layer { name: "lstm1" type: "LSTM" bottom: "x" bottom: "cont" top: "h" '
     'recurrent_param { num_output: 5 } }',
     r"Unsupported layer type: LSTM \(layer 'lstm1'\): Caffe's recurrent layers"),
    ('layer { name: "unit" type: "LSTMUnit" bottom: "x" bottom: "x" bottom: "cont" top: "c" '
     'top: "h" }', r"Unsupported layer type: LSTMUnit \(layer 'unit'\)"),
    ('layer { name: "windows" type: "WindowData" top: "data" top: "label" '
     'window_data_param { source: "w.txt" batch_size: 2 } }',
     r"Unsupported layer type: WindowData \(layer 'windows'\): R-CNN's window sampler "
     r'\(window_data_param\)'),
])
def test_unsupported_types_fail_naming_the_layer(layer_text, message):
    with pytest.raises(UnknownLayerError, match=message):
        net_with(layer_text)


def test_unsupported_v1_window_data():
    param = parse_text('layers { name: "w" type: WINDOW_DATA top: "data" top: "label" }',
                       caffe_pb2.NetParameter(), '<v1>')
    upgrade_net(param, '<v1>')
    assert [layer.type for layer in param.layer] == ['WindowData']
    with pytest.raises(UnknownLayerError,
                       match=r"Unsupported layer type: WindowData \(layer 'w'\)"):
        Net(param, caffe_pb2.TRAIN)


@pytest.mark.parametrize('layer_type', ['Convolution', 'Deconvolution', 'Im2col'])
@pytest.mark.parametrize('shape', [(1, 2, 4, 4, 4), (1, 2, 4)])
def test_n_d_convolution_is_refused_naming_the_layer(layer_type, shape):
    """Caffe convolves any number of spatial axes; cct's lowering is 2-D only, and says so."""
    text = ('name: "conv3d" type: "%s" convolution_param { num_output: 2 kernel_size: 1 }'
            % layer_type)
    with pytest.raises(NetError, match=r"conv3d.*only 2-D .* %d spatial axes after axis 1"
                       % (len(shape) - 2)):
        make_layer(text, [shape])


def test_cudnn_engine_runs_cct_kernels_and_says_so_once(monkeypatch):
    """Caffe picks cuDNN for ``engine: CUDNN``; cct has no cuDNN engine, runs its own kernels and
    logs that once per layer type (not silently, not once per layer)."""
    from cct.layers import base
    monkeypatch.setattr(base, '_ENGINE_NOTED', set())
    text = 'type: "Pooling" pooling_param { pool: MAX kernel_size: 2 engine: CUDNN }'
    with captured_log() as messages:
        for name in ('pool1', 'pool2'):
            layer, bottom, top = make_layer('name: "%s" %s' % (name, text), [(1, 1, 4, 4)])
        make_layer('type: "Pooling" pooling_param { kernel_size: 2 engine: CAFFE }',
                   [(1, 1, 4, 4)])
    notes = [m for m in messages if 'CUDNN' in m]
    assert notes == ["Layer 'pool1' (type Pooling) asks for engine: CUDNN; cct has no cuDNN "
                     'engine and runs its own kernels for Pooling layers']
    layer.forward(bottom, top)
    assert top[0].data[0, 0, 0, 0] == bottom[0].data[0, 0, :2, :2].max()
