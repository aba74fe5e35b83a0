"""The device seam without OpenCL: the registry and Caffe's numbering, CCT_DEVICE, Blob's host views
with SyncedMemory semantics, nets and solvers on an accelerator (a mirror of the CPU) giving the
CPU's numbers, and layers a device cannot run refused by name when the net is built."""
import numpy as np
import pytest

from cct import devices, runtime
from cct.blob import Blob
from cct.errors import DeviceError
from cct.io import parse_text
from cct.layers.reduction import ReductionLayer
from cct.net import Net
from cct.proto import caffe_pb2
from cct.solver import solver_class
from mirror_support import MirrorDevice

NET = '''
name: "small"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 6 dim: 2 dim: 8 dim: 8 } shape { dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: "xavier" }
                            bias_filler { type: "constant" value: 0.1 } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "norm" type: "LRN" bottom: "pool" top: "norm" lrn_param { local_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "norm" top: "norm" }
layer { name: "drop" type: "Dropout" bottom: "norm" top: "norm" }
layer { name: "ip" type: "InnerProduct" bottom: "norm" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy" }
'''


def net_param(text=NET):
    return parse_text(text, caffe_pb2.NetParameter(), '<net>')


def test_the_registry_names_devices_and_refuses_unknown_ones():
    assert devices.get_device('cpu') is devices.get_device('CPU')
    assert devices.get_device('cpu').name == 'cpu' and devices.device_names()[0] == 'cpu'
    with pytest.raises(DeviceError, match=r"unknown device 'tpu:0'; devices here: cpu"):
        devices.get_device('tpu:0')
    with pytest.raises(DeviceError, match=r'device opencl:99 does not exist.*devices here: cpu'):
        devices.get_device('opencl:99')
    with pytest.raises(DeviceError, match='GPU 99 does not exist'):
        devices.accelerator_name(99)
    accelerators = devices.device_names()[1:]
    for ordinal, name in enumerate(accelerators):   # CUDA first, then OpenCL
        assert devices.accelerator_name(ordinal) == name
    assert [n.split(':')[0] for n in accelerators] == sorted(
        (n.split(':')[0] for n in accelerators), key=devices.ACCELERATORS.index)


def test_cct_device_overrides_the_mode(monkeypatch):
    runtime.set_mode_cpu()
    monkeypatch.setenv('CCT_DEVICE', 'cpu')
    assert runtime.current_device().name == 'cpu'
    monkeypatch.setenv('CCT_DEVICE', 'quantum:3')
    with pytest.raises(DeviceError, match="unknown device 'quantum:3'"):
        runtime.current_device()


def test_blob_host_views_follow_caffes_syncedmemory():
    device = MirrorDevice()
    blob = Blob(2, 3, device=device)
    assert np.array_equal(blob.data, np.zeros((2, 3)))
    blob.data[...] = np.arange(6).reshape(2, 3)     # a script writes the host view in place
    assert np.array_equal(blob.dev_data, np.arange(6).reshape(2, 3))   # synced on device use
    uploads = device.uploads
    blob.dev_data[...] = 7                           # the device writes (head: device)
    assert blob.dev_data is not blob.data
    assert device.uploads == uploads and np.all(blob.data == 7)        # synced on access
    blob.diff[0, 0] = 5
    assert blob.dev_diff[0, 0] == 5 and blob.dev_diff.sum() == 5
    blob.reshape(4, 3)                               # grows: a new zeroed buffer, as on the CPU
    assert np.all(blob.data == 0) and blob.dev_data.shape == (4, 3)
    other = Blob(4, 3, device=device)
    other.share_data(blob)
    blob.data[1] = 2
    assert np.all(other.dev_data[1] == 2)


def _run(device, solver_type='SGD', steps=3):
    param = caffe_pb2.SolverParameter(base_lr=0.05, momentum=0.9 if solver_type in (
        'SGD', 'Nesterov', 'Adam', 'AdaDelta') else 0.0, weight_decay=0.01, lr_policy='fixed',
        random_seed=5, display=0, type=solver_type, delta=1e-6, clip_gradients=2.0)
    param.train_net_param.CopyFrom(net_param())
    runtime.use_device(device)
    try:
        solver = solver_class(solver_type)(param)
    finally:
        runtime.set_mode_cpu()
    gen = np.random.default_rng(0)
    solver.net.blobs['data'].data[...] = gen.standard_normal((6, 2, 8, 8))
    solver.net.blobs['label'].data[...] = gen.integers(0, 3, 6)
    losses = []
    for _ in range(steps):
        solver.step(1)
        losses.append(float(solver.net.blobs['loss'].data))
    return solver, losses


@pytest.mark.parametrize('solver_type', ['SGD', 'Nesterov', 'AdaGrad', 'RMSProp', 'AdaDelta',
                                         'Adam'])
def test_training_on_an_accelerator_gives_the_cpus_numbers(solver_type):
    """The mirror computes with the CPU's primitives, so every number must be the CPU's exactly:
    a layer or solver reading a stale host copy, or missing a sync, would change them."""
    cpu, cpu_losses = _run('cpu', solver_type)
    mirror, mirror_losses = _run(MirrorDevice(), solver_type)
    assert mirror.net.device.kind == 'mirror'
    assert mirror_losses == cpu_losses
    for name in cpu.net.blobs:
        np.testing.assert_array_equal(mirror.net.blobs[name].data, cpu.net.blobs[name].data)
    for mine, theirs in zip(cpu.net.learnable_params, mirror.net.learnable_params):
        np.testing.assert_array_equal(theirs.data, mine.data)
        np.testing.assert_array_equal(theirs.diff, mine.diff)
    for mine, theirs in zip(cpu.history_on_host(), mirror.history_on_host()):
        np.testing.assert_array_equal(theirs, mine)


def test_snapshots_from_an_accelerator_restore_on_the_cpu(tmp_path):
    mirror, _ = _run(MirrorDevice(), 'Adam', steps=2)
    mirror.param.snapshot_prefix = str(tmp_path / 'm')
    mirror.snapshot()
    cpu, _ = _run('cpu', 'Adam', steps=0)
    cpu.restore(str(tmp_path / 'm_iter_2.solverstate'))
    for mine, theirs in zip(cpu.history_on_host(), mirror.history_on_host()):
        np.testing.assert_array_equal(mine, theirs)
    for mine, theirs in zip(cpu.net.learnable_params, mirror.net.learnable_params):
        np.testing.assert_array_equal(mine.data, theirs.data)


def test_a_layer_the_device_cannot_run_is_refused_by_name_at_build(monkeypatch):
    text = NET + ('layer { name: "total" type: "Reduction" bottom: "ip" top: "total" '
                  'reduction_param { operation: SUMSQ } }')
    with pytest.raises(DeviceError, match=r"Layer 'total' \(type Reduction\) is not supported "
                                          r'on device mirror:0 \(it needs the dot_rows'):
        Net(net_param(text), device=MirrorDevice(lacking=['dot_rows']))
    Net(net_param(text), device=MirrorDevice())
    # A layer class that lists no primitives (numpy on host arrays) runs on the CPU only.
    monkeypatch.setattr(ReductionLayer, 'primitives', None)
    with pytest.raises(DeviceError, match=r"Layer 'total' \(type Reduction\) is not supported "
                                          r'on device mirror:0 \(it computes with numpy'):
        Net(net_param(text), device=MirrorDevice())
    with pytest.raises(DeviceError, match=r"Layer 'pool' \(type Pooling\) is not supported on "
                                          r'device mirror:0 \(it needs the pool_forward'):
        Net(net_param(), device=MirrorDevice(lacking=['pool_forward']))
    with pytest.raises(DeviceError, match=r"Layer 'relu' \(type ReLU\) .* unary primitive for "
                                          r'relu'):
        Net(net_param(), device=MirrorDevice(lacking=['relu']))
    Net(net_param(text), device='cpu')   # the CPU runs every layer
