"""benchmarks/batch_norm_time.py turns the zoo's deploy nets into the TRAIN nets it times: batch
statistics, a loss, and every BatchNorm paired with its Scale."""
import importlib.util
import os

import numpy as np

from cct.net import Net
from cct.proto import caffe_pb2

SCRIPT = os.path.join(os.path.dirname(__file__), '..', '..', 'benchmarks', 'batch_norm_time.py')


def test_mobilenet_v2_training_net(shared, monkeypatch):
    monkeypatch.setenv('CCT_SHARED', shared)
    spec = importlib.util.spec_from_file_location('batch_norm_time_under_test', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from cct.io.protofiles import parse_text
    text = module.training_prototxt('mobilenet_v2', 1)
    param = parse_text(text, caffe_pb2.NetParameter(), '<mobilenet_v2 train>')
    assert not param.force_backward and not param.input
    assert all(not layer.batch_norm_param.HasField('use_global_stats')
               for layer in param.layer if layer.type == 'BatchNorm')
    net = Net(param, caffe_pb2.TRAIN, dtype=np.float32)
    assert net.blobs['data'].shape == (1, 3, 224, 224)
    assert net.layers[-1].type == 'SoftmaxWithLoss'
    batch_norms = [i for i, layer in enumerate(net.layers) if layer.type == 'BatchNorm']
    assert len(batch_norms) == 53 and sorted(net.fused_pairs) == batch_norms
    # MobileNet v2's BatchNorms write their own tops: x_norm is recomputed, never kept.
    assert all(net.layers[i].recompute for i in batch_norms)
