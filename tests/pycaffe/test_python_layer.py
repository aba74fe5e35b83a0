"""``type: "Python"`` layers (cct/layers/python_layer.py): pycaffe's test_python_layer.py cases
(forward, backward, reshape, exceptions, param blobs with save/load/share, phase, param_str), the
error messages, and a Python layer inside a net that trains."""
import textwrap

import numpy as np
import pytest

import cct as caffe
from cct.errors import NetError

USER_MODULE = '''
import numpy as np
import cct as caffe


class SimpleLayer(caffe.Layer):
    """Multiplies by ten."""
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 10 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 10 * top[0].diff


class ExceptionLayer(caffe.Layer):
    def setup(self, bottom, top):
        raise RuntimeError('raised in setup')


class ParameterLayer(caffe.Layer):
    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = 0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] = 1


class PhaseLayer(caffe.Layer):
    def setup(self, bottom, top):
        self.phase_at_setup = self.phase
        self.param_str_at_setup = self.param_str

    def reshape(self, bottom, top):
        top[0].reshape()

    def forward(self, bottom, top):
        top[0].data[()] = self.phase


class EuclideanLossLayer(caffe.Layer):
    """pycaffe's examples/pycaffe/layers/pyloss.py: Euclidean loss, sum of squares / 2N."""
    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise Exception('Need two inputs to compute distance.')

    def reshape(self, bottom, top):
        self.diff = np.zeros_like(bottom[0].data, dtype=np.float32)
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.diff[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.diff ** 2) / bottom[0].num / 2.

    def backward(self, top, propagate_down, bottom):
        for i in range(2):
            if not propagate_down[i]:
                continue
            sign = 1 if i == 0 else -1
            bottom[i].diff[...] = sign * self.diff / bottom[i].num


class NotALayer:
    pass
'''

SIMPLE_NET = """name: 'pythonnet' force_backward: true
input: 'data' input_shape { dim: 10 dim: 9 dim: 8 }
layer { type: 'Python' name: 'one' bottom: 'data' top: 'one'
  python_param { module: 'cct_test_user_layers' layer: 'SimpleLayer' } }
layer { type: 'Python' name: 'two' bottom: 'one' top: 'two'
  python_param { module: 'cct_test_user_layers' layer: 'SimpleLayer' } }
layer { type: 'Python' name: 'three' bottom: 'two' top: 'three'
  python_param { module: 'cct_test_user_layers' layer: 'SimpleLayer' } }
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A user module of Python layers, importable as Caffe expects (on sys.path)."""
    (tmp_path / 'cct_test_user_layers.py').write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    import sys
    sys.modules.pop('cct_test_user_layers', None)


def net_file(directory, text, name='net.prototxt'):
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def python_layer_net(directory, layer_class, module='cct_test_user_layers'):
    return net_file(directory, """name: 'pythonnet' force_backward: true
        input: 'data' input_shape { dim: 10 dim: 9 dim: 8 }
        layer { type: 'Python' name: 'layer' bottom: 'data' top: 'top'
          python_param { module: '%s' layer: '%s' } }
        """ % (module, layer_class))


def test_forward(user_module):
    net = caffe.Net(net_file(user_module, SIMPLE_NET), caffe.TRAIN)
    net.blobs['data'].data[...] = 8
    net.forward()
    assert (net.blobs['three'].data == 10 ** 3 * 8).all()
    assert type(net.layers[1]).__name__ == 'SimpleLayer' and net.layers[1].type == 'Python'


def test_backward(user_module):
    net = caffe.Net(net_file(user_module, SIMPLE_NET), caffe.TRAIN)
    net.blobs['three'].diff[...] = 7
    net.backward()
    assert (net.blobs['data'].diff == 10 ** 3 * 7).all()


def test_reshape(user_module):
    net = caffe.Net(net_file(user_module, SIMPLE_NET), caffe.TRAIN)
    net.blobs['data'].reshape(4, 4, 4, 4)
    net.forward()
    assert all(blob.data.shape == (4, 4, 4, 4) for blob in net.blobs.values())


def test_exception_in_setup_propagates(user_module):
    with pytest.raises(RuntimeError, match='raised in setup'):
        caffe.Net(python_layer_net(user_module, 'ExceptionLayer'), caffe.TEST)


def test_parameter_blobs_save_load_and_share(user_module, tmp_path):
    path = python_layer_net(user_module, 'ParameterLayer')
    net = caffe.Net(path, caffe.TRAIN)
    net.forward()
    net.backward()
    layer = net.layers[list(net._layer_names).index('layer')]
    assert layer.blobs[0].data[0] == 0 and layer.blobs[0].diff[0] == 1
    layer.blobs[0].data[0] += layer.blobs[0].diff[0]
    assert list(net.params) == ['layer']
    weights = str(tmp_path / 'python.caffemodel')
    net.save(weights)
    layer.blobs[0].data[0] = -1
    net.copy_from(weights)
    assert layer.blobs[0].data[0] == 1
    net2 = caffe.Net(path, caffe.TRAIN)
    net2.share_with(net)
    assert net2.layers[list(net2._layer_names).index('layer')].blobs[0].data[0] == 1


def test_phase_and_param_str_are_set_before_setup(user_module):
    path = net_file(user_module, """name: 'phasenet'
        layer { type: 'Python' name: 'layer' top: 'phase'
          python_param { module: 'cct_test_user_layers' layer: 'PhaseLayer'
                         param_str: "{'k': 3}" } }
        """)
    for phase in (caffe.TRAIN, caffe.TEST):
        net = caffe.Net(path, phase)
        assert net.forward()['phase'] == phase
        assert net.layers[0].phase_at_setup == phase
        assert net.layers[0].param_str_at_setup == "{'k': 3}"


def test_errors_name_the_layer(user_module):
    with pytest.raises(NetError, match="Layer 'layer' \\(type Python\\).*cannot import "
                                       "python_param.module 'no_such_module'.*PYTHONPATH"):
        caffe.Net(python_layer_net(user_module, 'X', 'no_such_module'), caffe.TEST)
    with pytest.raises(NetError, match="has no class 'Missing'"):
        caffe.Net(python_layer_net(user_module, 'Missing'), caffe.TEST)
    with pytest.raises(NetError, match='must be a class derived from cct.Layer'):
        caffe.Net(python_layer_net(user_module, 'NotALayer'), caffe.TEST)


def test_python_loss_layer_trains_a_linear_regression(user_module):
    """pycaffe's pyloss example as the loss of a net trained by plain gradient steps."""
    path = net_file(user_module, """name: 'regression' force_backward: true
        layer { name: 'data' type: 'Input' top: 'data' top: 'target'
                input_param { shape { dim: 32 dim: 3 } shape { dim: 32 dim: 1 } } }
        layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
                inner_product_param { num_output: 1 weight_filler { type: 'gaussian' std: 0.1 } } }
        layer { type: 'Python' name: 'loss' bottom: 'ip' bottom: 'target' top: 'loss'
                python_param { module: 'cct_test_user_layers' layer: 'EuclideanLossLayer' }
                loss_weight: 1 }
        """)
    caffe.set_random_seed(0)
    net = caffe.Net(path, caffe.TRAIN)
    rng = np.random.default_rng(0)
    true_w, true_b = np.array([[1.5, -2.0, 0.5]], np.float32), 0.25
    losses = []
    for _ in range(200):
        x = rng.standard_normal((32, 3)).astype(np.float32)
        net.blobs['data'].data[...] = x
        net.blobs['target'].data[...] = x @ true_w.T + true_b
        losses.append(float(net.forward()['loss'][0]))
        net.clear_param_diffs()
        net.backward()
        for blob in net.params['ip']:
            blob.data[...] -= 0.1 * blob.diff
    assert losses[0] > 0.5 and losses[-1] < 1e-6
    np.testing.assert_allclose(net.params['ip'][0].data, true_w, atol=1e-3)
    assert net.params['ip'][1].data[0] == pytest.approx(true_b, abs=1e-3)


TRAINING_MODULE = '''
import ast

import numpy as np
import cct as caffe


class RegressionData(caffe.Layer):
    """A data layer in Python, configured by param_str (pycaffe's pascal multilabel pattern)."""
    def setup(self, bottom, top):
        params = ast.literal_eval(self.param_str)
        self.batch = params['batch']
        self.rng = np.random.default_rng(params['seed'])
        self.true_scale = np.array(params['scale'], np.float32)
        if self.phase != caffe.TRAIN:
            raise Exception('this data layer is for training')

    def reshape(self, bottom, top):
        top[0].reshape(self.batch, len(self.true_scale))
        top[1].reshape(self.batch, len(self.true_scale))

    def forward(self, bottom, top):
        x = self.rng.standard_normal(top[0].shape).astype(np.float32)
        top[0].data[...] = x
        top[1].data[...] = x * self.true_scale

    def backward(self, top, propagate_down, bottom):
        pass


class ChannelScale(caffe.Layer):
    """y = x * s with one learnable scale per column, created with blobs.add_blob."""
    def setup(self, bottom, top):
        self.blobs.add_blob(bottom[0].shape[1])
        self.blobs[0].data[...] = 1

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data * self.blobs[0].data

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[...] += (top[0].diff * bottom[0].data).sum(axis=0)
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff * self.blobs[0].data
'''


def test_python_data_and_parameter_layers_train_with_sgd_solver(tmp_path, monkeypatch):
    """A net written by NetSpec whose data layer and learnable layer are both Python; SGDSolver
    learns the layer's own param blob (its lr_mult from the prototxt applies to it)."""
    (tmp_path / 'cct_test_training_layers.py').write_text(TRAINING_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    L = caffe.layers
    n = caffe.NetSpec()
    n.x, n.y = L.Python(module='cct_test_training_layers', layer='RegressionData', ntop=2,
                        param_str=str(dict(batch=16, seed=1, scale=[2.0, -0.5, 3.0])))
    n.scaled = L.Python(n.x, module='cct_test_training_layers', layer='ChannelScale',
                        param=[dict(lr_mult=2)])
    n.loss = L.EuclideanLoss(n.scaled, n.y)
    net_path = tmp_path / 'train.prototxt'
    net_path.write_text(str(n.to_proto()))
    solver_path = tmp_path / 'solver.prototxt'
    solver_path.write_text('net: "%s"\nbase_lr: 0.05\nlr_policy: "fixed"\nmomentum: 0.9\n'
                           'max_iter: 300\ndisplay: 0\nsnapshot_prefix: "%s"\n'
                           % (net_path, tmp_path / 'scale'))
    solver = caffe.SGDSolver(str(solver_path))
    assert list(solver.net.params) == ['scaled']
    scale = solver.net.params['scaled'][0]
    assert scale.shape == (3,)
    solver.step(1)
    first_loss = float(solver.net.blobs['loss'].data)
    # One update, no history yet: 1 - base_lr * lr_mult * gradient.
    x, y = solver.net.blobs['x'].data, solver.net.blobs['y'].data
    gradient = ((x - y) * x).sum(axis=0) / 16
    np.testing.assert_allclose(scale.data, 1 - 0.05 * 2 * gradient, rtol=1e-5)
    solver.solve()
    assert solver.iter == 300 and first_loss > 1
    assert float(solver.net.blobs['loss'].data) < 1e-8
    np.testing.assert_allclose(scale.data, [2.0, -0.5, 3.0], atol=1e-4)
    # The trained Python-layer param is saved in the snapshot and loads back by layer name.
    reloaded = caffe.Net(str(net_path), str(tmp_path / 'scale_iter_300.caffemodel'), caffe.TRAIN)
    np.testing.assert_array_equal(reloaded.params['scaled'][0].data, scale.data)


def test_the_import_is_logged_and_cct_info_names_the_code_it_ran(user_module, caplog, capsys):
    """Building a net imports the module a prototxt names (so runs its code), even for
    ``cct info``: the log line and info's output say which module, class and file."""
    path = python_layer_net(user_module, 'SimpleLayer')
    with caplog.at_level('INFO', logger='cct'):
        caffe.Net(path, caffe.TEST)
    assert "Python layer 'layer': importing module 'cct_test_user_layers' for class " \
        "'SimpleLayer'" in caplog.messages
    from cct.cli import main
    assert main(['info', path]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [
        'Python layers (building the net imported their modules, running their code):',
        "  'layer': class SimpleLayer of module cct_test_user_layers (%s)"
        % (user_module / 'cct_test_user_layers.py')]
