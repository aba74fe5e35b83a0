"""What the ONNX export tests share: random weights that keep activations near unit scale, and the
comparison of ONNX Runtime's outputs with cct's forward on the same inputs."""
import numpy as np
import onnx
import onnxruntime

from cct.net import Net
from cct.proto import caffe_pb2

# The bar: ONNX Runtime's outputs within 1e-4 of cct's, relative to the output's largest
# magnitude.
TOLERANCE = 1e-4


def net_from_text(text, **kwargs):
    """A TEST-phase Net from prototxt text."""
    from cct.io.protofiles import parse_text
    param = parse_text(text, caffe_pb2.NetParameter())
    param.state.phase = caffe_pb2.TEST
    return Net(param, **kwargs)


def randomize(net, seed=0):
    """He-scaled random weights (so deep nets neither vanish nor saturate their softmax), biases
    of 0.1 scale, and BatchNorm statistics stored as sums with a scale factor of 3."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if layer.type == 'BatchNorm':
            channels = layer.blobs[0].count
            factor = 3.0
            layer.blobs[0].data[...] = rng.standard_normal(channels) * 0.2 * factor
            layer.blobs[1].data[...] = (rng.random(channels) + 0.5) * factor
            layer.blobs[2].data[...] = factor
            continue
        for blob in layer.blobs:
            if blob.ndim >= 2:
                fan_in = blob.count // blob.shape[0]
                if layer.type == 'InnerProduct' and layer.transpose:
                    fan_in = blob.shape[0]
                values = rng.standard_normal(blob.shape, np.float32) * \
                    np.float32(np.sqrt(2.0 / fan_in))
            else:
                values = rng.standard_normal(blob.shape) * 0.1 + (
                    1.0 if layer.type == 'Scale' else 0.0)
            blob.data[...] = values
    return net


def session(path):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


def cct_forward(net, feeds):
    """cct's outputs (copies) for ``feeds`` (input name -> array), reshaping the net to them."""
    for name, array in feeds.items():
        net.blobs[name].reshape(*array.shape)
    net.reshape()
    for name, array in feeds.items():
        net.blobs[name].data[...] = array
    net.forward()
    return {name: net.blobs[name].data.copy() for name in net.outputs}


def random_feeds(net, batch, rng, inputs=None):
    feeds = {}
    for name in inputs or net.inputs:
        shape = (batch,) + tuple(net.blobs[name].shape[1:])
        feeds[name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def assert_matches(net, model_path, batches, seed=1, feeds_for=None):
    """Run the exported model and cct's forward at each batch size; every output must agree within
    TOLERANCE of its largest magnitude (and have cct's shape)."""
    onnx.checker.check_model(str(model_path), full_check=True)
    runner = session(model_path)
    names = [output.name for output in runner.get_outputs()]
    declared = {output.name: output.shape for output in runner.get_outputs()}
    assert sorted(names) == sorted(net.outputs)
    rng = np.random.default_rng(seed)
    for batch in batches:
        feeds = feeds_for(batch, rng) if feeds_for else random_feeds(net, batch, rng)
        expected = cct_forward(net, feeds)
        got = dict(zip(names, runner.run(names, feeds)))
        for name in names:
            want = expected[name]
            assert got[name].shape == want.shape, (name, batch, got[name].shape, want.shape)
            # The declared output shape: fixed sizes as produced, the rest symbolic (the batch).
            assert len(declared[name]) == want.ndim and all(
                size == actual if isinstance(size, int) else size
                for size, actual in zip(declared[name], want.shape)), (name, declared[name])
            scale = max(float(np.abs(want).max()), 1e-30)
            error = float(np.abs(got[name] - want).max()) / scale
            assert error <= TOLERANCE, '%s at batch %d: relative error %.3g' % (name, batch, error)
