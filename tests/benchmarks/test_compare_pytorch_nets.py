"""benchmarks/compare_pytorch.py finds its nets: LeNet's and CIFAR-10 quick's in cct's examples/,
the ImageNet nets only in Caffe's reference material ($CCT_SHARED), and says so when it is absent
(it had ended in "benchmark worker died")."""
import importlib.util
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), '..', '..', 'benchmarks', 'compare_pytorch.py')


@pytest.fixture
def bench(monkeypatch, tmp_path):
    """The script as a module, with CCT_SHARED pointing where nothing is."""
    monkeypatch.setenv('CCT_SHARED', str(tmp_path / 'nowhere'))
    spec = importlib.util.spec_from_file_location('compare_pytorch_under_test', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_examples_nets_need_no_shared(bench, tmp_path, capsys):
    chosen, note = bench.select_nets(bench.DEFAULT, explicit=False)
    assert chosen == [('lenet', 64), ('cifar10_quick', 100)]
    assert note == ("skipping caffenet:64, alexnet:64, caffenet:256, googlenet:32: their "
                    "prototxts are Caffe's, looked for in %s (set CCT_SHARED to the folder of "
                    "Caffe's reference material that holds nets/)" % (tmp_path / 'nowhere' / 'nets'))
    for name, chw in (('lenet', (1, 28, 28)), ('cifar10_quick', (3, 32, 32))):
        param, shape = bench.training_net_param(name, 4)
        assert shape == (4,) + chw
        assert [layer.type for layer in param.layer][0] == 'Input'
        assert 'Data' not in [layer.type for layer in param.layer]


def test_a_shared_net_asked_for_by_name_is_an_error(bench, tmp_path):
    with pytest.raises(SystemExit) as error:
        bench.select_nets(['lenet:8', 'caffenet:64'], explicit=True)
    assert str(error.value) == (
        "compare_pytorch.py: caffenet needs Caffe's reference material: %s not found (set "
        "CCT_SHARED to the folder that holds nets/)"
        % (tmp_path / 'nowhere' / 'nets' / 'bvlc_reference_caffenet' / 'train_val.prototxt'))
    with pytest.raises(SystemExit, match="'vgg:2' is not NET:BATCH with NET one of lenet, "):
        bench.select_nets(['vgg:2'], explicit=True)
    assert bench.select_nets(['lenet:8'], explicit=True) == ([('lenet', 8)], None)


def test_shared_nets_are_used_when_present(shared, monkeypatch):
    monkeypatch.setenv('CCT_SHARED', shared)
    spec = importlib.util.spec_from_file_location('compare_pytorch_with_shared', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.select_nets(['googlenet:2'], explicit=True) == ([('googlenet', 2)], None)


def test_zoo_deploy_nets_become_training_nets(shared, monkeypatch):
    """The zoo's deploy prototxts are trained as their train_val would be: an Input giving data
    and label, the final Softmax a SoftmaxWithLoss, BatchNorm on batch statistics (their
    use_global_stats: true goes), no force_backward (ResNet-50's deploy net sets it)."""
    monkeypatch.setenv('CCT_SHARED', shared)
    spec = importlib.util.spec_from_file_location('compare_pytorch_zoo_nets', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.select_nets(module.ZOO, explicit=True)[0] == [
        ('resnet50', 16), ('mobilenet', 32), ('mobilenet_v2', 32), ('squeezenet', 32),
        ('googlenet', 32)]
    from cct.net import Net
    from cct.proto import caffe_pb2
    for name, layers in (('resnet50', 53), ('mobilenet', 27), ('mobilenet_v2', 53)):
        param, shape = module.training_net_param(name, 2, (3, 224, 224))
        assert shape == (2, 3, 224, 224) and not param.force_backward
        kinds = [layer.type for layer in param.layer]
        assert kinds[0] == 'Input' and list(param.layer[0].top) == ['data', 'label']
        assert kinds[-1] == 'SoftmaxWithLoss' and 'Softmax' not in kinds
        norms = [layer for layer in param.layer if layer.type == 'BatchNorm']
        assert len(norms) == layers
        assert not any(layer.batch_norm_param.HasField('use_global_stats') for layer in norms)
        assert module.has_batch_norm(name)
    assert not module.has_batch_norm('squeezenet')
    net = Net(module.training_net_param('mobilenet', 2, (3, 32, 32))[0])
    assert net.layer_by_name('conv1/bn').use_global_stats is False
    assert net.phase == caffe_pb2.TRAIN and net.blobs['label'].shape == (2,)
