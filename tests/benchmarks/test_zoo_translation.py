"""benchmarks/torch_reference.py translates the zoo's nets (BatchNorm + Scale, Eltwise sums,
depthwise convolutions, Concat, Dropout) to PyTorch faithfully: with cct's weights copied in, every
blob of one training forward pass and every param gradient of the backward pass match cct's, in the
plain and the folded (BatchNorm2d with affine) translation. The benchmark's numbers compare the same
net only if this holds.

float64 on both sides: BatchNorm in training mode over the few values a small batch gives amplifies
float32 rounding in the gradients to percent level, which would hide a translation error; in
float64 the two agree to about 1e-9. Dropout's ratio is set to 0 (identity on both sides) because
the two frameworks draw different masks.
"""
import importlib.util
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip(
    'torch', reason='PyTorch (the benchmarks\' contender, pip install "torch>=2.13") is not '
                    'installed')

BENCHMARKS = os.path.join(os.path.dirname(__file__), '..', '..', 'benchmarks')


@pytest.fixture(scope='module')
def bench(shared):
    os.environ.setdefault('CCT_SHARED', shared)
    sys.path.insert(0, os.path.abspath(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(
        'compare_pytorch_zoo', os.path.join(BENCHMARKS, 'compare_pytorch.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.NETS = {name: (path.replace(module.SHARED, shared), chw)
                   for name, (path, chw) in module.NETS.items()}
    yield module
    sys.path.remove(os.path.abspath(BENCHMARKS))


def _randomise(net, rng):
    """He-scaled weights, small biases and Scales away from 1 (the deploy nets' fillers are
    constant zeros where they name none, which would make every blob 0)."""
    for layer in net.layers:
        if layer.type in ('Convolution', 'InnerProduct'):
            weights = layer.blobs[0]
            weights.data[...] = rng.standard_normal(weights.shape) * np.sqrt(
                2.0 / (weights.count // weights.shape[0]))
        elif layer.type != 'Scale':
            continue
        for blob in layer.blobs[1:]:
            blob.data[...] = rng.uniform(-0.1, 0.1, blob.shape)
        if layer.type == 'Scale':
            layer.blobs[0].data[...] = rng.uniform(0.5, 1.5, layer.blobs[0].shape)


# Each net's plain translation where it adds something (MobileNet: in-place BatchNorm and
# depthwise convolutions; MobileNet v2: a BatchNorm with its own top, residual sums; SqueezeNet:
# Concat, Dropout), the folded one where the BatchNorms are of both kinds (float64 depthwise
# convolutions are slow in PyTorch, so not every pairing runs).
@pytest.mark.parametrize('name, batch, size, fold', [
    ('mobilenet', 2, 64, False), ('mobilenet_v2', 2, 64, False), ('mobilenet_v2', 2, 64, True),
    ('squeezenet', 2, 64, False),
    # pool5 is a fixed 7x7 window: ResNet-50 needs its full 224x224 input.
    ('resnet50', 1, 224, True)])
def test_zoo_translation_matches_cct(bench, name, batch, size, fold):
    from cct.net import Net
    from torch_reference import TorchNet
    param, shape = bench.training_net_param(name, batch, (3, size, size))
    for layer in param.layer:
        if layer.type == 'Dropout':
            layer.dropout_param.dropout_ratio = 0
    net = Net(param, dtype=np.float64)
    rng = np.random.default_rng(0)
    _randomise(net, rng)
    net.blobs['data'].data[...] = rng.standard_normal(shape)
    net.blobs['label'].data[...] = rng.integers(0, 1000, batch)
    loss = net.forward_from_to()
    net.backward_from_to()
    inputs = {'data': torch.from_numpy(net.blobs['data'].data.copy()),
              'label': torch.from_numpy(net.blobs['label'].data.copy())}
    model = TorchNet(param, {'data': shape, 'label': (batch,)}, fold_batch_norm=fold)
    model.double().train()
    model.load_cct_params(net)
    blobs = {}
    torch_loss = model(inputs, blobs)
    torch_loss.backward()
    scales = [layer.name for layer in net.layers if layer.type == 'Scale']
    assert sorted(model.folded) == (sorted(scales) if fold else [])
    assert float(torch_loss.detach()) == pytest.approx(loss, rel=1e-7)
    compared = 0
    for blob_name, tensor in blobs.items():
        if blob_name in net.blobs and blob_name not in inputs:
            ours = net.blobs[blob_name].data
            theirs = tensor.detach().numpy().reshape(ours.shape)
            np.testing.assert_allclose(theirs, ours, rtol=0, err_msg=blob_name,
                                       atol=1e-9 * max(np.abs(ours).max(), 1e-30))
            compared += 1
    assert compared >= 20
    grads = model.param_grads()
    assert len(grads) == sum(1 for layer in net.layers
                             if layer.type in ('Convolution', 'InnerProduct', 'Scale'))
    for layer_name, tensors in grads.items():
        ours = [blob.diff for blob in net.layer_by_name(layer_name).blobs]
        # A Scale's bias before a BatchNorm has a zero gradient (a per-channel shift is
        # normalised away): compare against the layer's largest gradient, not each blob's.
        largest = max(np.abs(diff).max() for diff in ours)
        for index, tensor in enumerate(tensors):
            np.testing.assert_allclose(
                tensor.numpy().reshape(ours[index].shape), ours[index], rtol=0,
                atol=1e-8 * largest, err_msg='%s param %d' % (layer_name, index))
