"""pycaffe's module-level surface (cct/__init__.py, cct/runtime.py, cct/timer.py): every name a
pycaffe script reaches through ``import cct as caffe``."""
import io
import time

import numpy as np
import pytest

import cct as caffe
from cct.errors import CctError
from cct.log import logger

PYCAFFE_NAMES = [
    'set_mode_cpu', 'set_mode_gpu', 'set_device', 'set_random_seed', 'init_log', 'log',
    'layer_type_list', 'solver_count', 'set_solver_count', 'solver_rank', 'set_solver_rank',
    'set_multiprocess', 'has_nccl', '__version__', 'TRAIN', 'TEST', 'Net', 'NCCL', 'Timer', 'Layer',
    'Classifier', 'Detector', 'io', 'layers', 'params', 'NetSpec', 'to_proto', 'proto']


def test_every_pycaffe_name_is_there():
    missing = [name for name in PYCAFFE_NAMES if not hasattr(caffe, name)]
    assert missing == []
    assert set(PYCAFFE_NAMES) <= set(dir(caffe))


def test_version_and_phases():
    assert caffe.__version__.count('.') == 2
    assert (caffe.TRAIN, caffe.TEST) == (0, 1)
    assert caffe.TRAIN == caffe.proto.caffe_pb2.TRAIN


def test_proto_module():
    net = caffe.proto.caffe_pb2.NetParameter(name='x')
    assert caffe.proto.caffe_pb2.NetParameter.FromString(net.SerializeToString()).name == 'x'
    from cct.proto import caffe_pb2
    assert caffe_pb2 is caffe.proto.caffe_pb2


def test_layer_type_list():
    types = caffe.layer_type_list()
    assert types == sorted(types)
    assert {'Convolution', 'Pooling', 'InnerProduct', 'SoftmaxWithLoss', 'Python'} <= set(types)


def test_layer_base_class_is_the_python_layer_contract():
    from cct.layers.base import Layer
    assert caffe.Layer is Layer
    for method in ('setup', 'reshape', 'forward', 'backward'):
        assert callable(getattr(caffe.Layer, method))
    layer = caffe.Layer(caffe.proto.caffe_pb2.LayerParameter(name='l'))
    assert len(layer.blobs) == 0
    layer.blobs.add_blob(2, 3)
    assert layer.blobs[0].shape == (2, 3) and layer.type == 'Python'


def test_cpu_mode_and_no_silent_gpu():
    caffe.set_mode_cpu()
    with pytest.raises(CctError, match='GPU 99 does not exist'):
        caffe.set_device(99)
    assert caffe.runtime.mode() == 'cpu'
    assert caffe.has_nccl() is False
    with pytest.raises(CctError, match='Multi-GPU'):
        caffe.NCCL(None, None)


def test_solver_count_and_rank():
    assert caffe.solver_count() == 1 and caffe.solver_rank() == 0
    try:
        caffe.set_solver_count(4)
        caffe.set_solver_rank(2)
        caffe.set_multiprocess(True)
        assert caffe.solver_count() == 4 and caffe.solver_rank() == 2
    finally:
        caffe.set_solver_count(1)
        caffe.set_solver_rank(0)
        caffe.set_multiprocess(False)


def test_set_random_seed_makes_fillers_repeat(tmp_path):
    path = tmp_path / 'net.prototxt'
    path.write_text("""layer { name: 'data' type: 'Input' top: 'data'
                               input_param { shape { dim: 2 dim: 3 } } }
                       layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
                               inner_product_param { num_output: 4
                                                     weight_filler { type: 'gaussian' } } }""")
    weights = []
    for seed in (7, 7, 8):
        caffe.set_random_seed(seed)
        weights.append(caffe.Net(str(path), caffe.TEST).params['ip'][0].data.copy())
    np.testing.assert_array_equal(weights[0], weights[1])
    assert not np.array_equal(weights[0], weights[2])


def test_init_log_and_log(tmp_path, monkeypatch, restore_logging):
    stream = io.StringIO()
    monkeypatch.setattr('sys.stderr', stream)
    caffe.init_log()
    caffe.log('hello from a script')
    logger.warning('a warning')
    caffe.init_log(1, True)
    caffe.log('not shown at level 1')
    logger.warning('shown at level 1')
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith('I') and lines[0].endswith('] hello from a script')
    assert lines[1].startswith('W') and lines[2].endswith('] shown at level 1')
    monkeypatch.setenv('GLOG_log_dir', str(tmp_path))
    path = caffe.init_log(0, False)
    caffe.log('into the file')
    assert path.startswith(str(tmp_path)) and '.log.INFO.' in path
    with open(path) as f:
        assert f.read().rstrip().endswith('] into the file')
    assert len(stream.getvalue().splitlines()) == 3
    caffe.init_log(0, True)  # closes the log file


def test_timer():
    timer = caffe.Timer()
    assert timer.ms == 0
    timer.start()
    time.sleep(0.02)
    timer.stop()
    elapsed = timer.ms
    assert 15 < elapsed < 1000
    time.sleep(0.01)
    assert timer.ms == elapsed  # stopped: reading again gives the same span
    timer.start()
    assert timer.running
    assert timer.ms >= 0 and not timer.running  # reading a running timer stops it


def test_lazy_submodules():
    assert caffe.draw.draw_net_to_file is not None
    import cct.draw
    assert caffe.draw is cct.draw
    with pytest.raises(AttributeError, match='no attribute'):
        caffe.not_a_pycaffe_name


SOLVER_TYPES = ['SGD', 'Nesterov', 'AdaGrad', 'RMSProp', 'AdaDelta', 'Adam']


def test_solver_classes_and_get_solver(tmp_path):
    import cct.solver
    for name in ['get_solver'] + [kind + 'Solver' for kind in SOLVER_TYPES]:
        assert getattr(caffe, name) is getattr(cct.solver, name)
    net = tmp_path / 'net.prototxt'
    net.write_text("""layer { name: 'data' type: 'Input' top: 'data' top: 'target'
                              input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 1 } } }
                      layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
                              inner_product_param { num_output: 1 } }
                      layer { name: 'loss' type: 'EuclideanLoss' bottom: 'ip' bottom: 'target'
                              top: 'loss' }""")
    for kind in SOLVER_TYPES:
        path = tmp_path / ('%s_solver.prototxt' % kind)
        path.write_text('net: "%s"\ntype: "%s"\nbase_lr: 0.01\nlr_policy: "fixed"\n'
                        'snapshot_prefix: "%s"\n' % (net, kind, tmp_path / kind))
        solver = caffe.get_solver(str(path))
        assert type(solver) is getattr(caffe, kind + 'Solver')
        assert type(getattr(caffe, kind + 'Solver')(str(path))) is type(solver)
        solver.step(2)
        assert solver.iter == 2 and list(solver.net.params) == ['ip']
