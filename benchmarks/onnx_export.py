"""ONNX export of ResNet-50 and CaffeNet: export time, file size, and ONNX Runtime's CPU inference
time next to cct's forward on the same inputs (reported as ORT / cct).

The nets are the deploy prototxts from ../shared with random weights (the weights' values change
neither the export's work nor either runtime's). Export time is the best of --exports runs of
``Net.export_onnx`` (graph, weight folding, onnx.checker's full check and the atomic write). For
inference both runtimes use every core; they take turns (after a settling pause, so one's
spinning threads do not slow the other) and each one's fastest of --rounds turns is compared,
because the host is noisy. The outputs are checked to agree (1e-4 of the largest) before timing.

    pip install onnx onnxruntime && python benchmarks/onnx_export.py
    python benchmarks/onnx_export.py --nets caffenet --batches 1 --rounds 3
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get('CCT_SHARED', os.path.join(HERE, '..', '..', 'shared'))
NETS = {
    'resnet50': 'zoo/resnet50_deploy.prototxt',
    'caffenet': 'bvlc_reference_caffenet/deploy.prototxt',
}
SETTLE_SECONDS = 0.5


def random_weights(net, rng):
    """He-scaled weights, small biases, BatchNorm statistics with a scale factor of 1."""
    for layer in net.layers:
        for index, blob in enumerate(layer.blobs):
            if layer.type == 'BatchNorm':
                blob.data[...] = 1.0 if index else 0.0
            elif blob.ndim >= 2:
                blob.data[...] = rng.standard_normal(blob.shape, np.float32) * np.float32(
                    np.sqrt(2.0 / (blob.count // blob.shape[0])))
            else:
                blob.data[...] = rng.standard_normal(blob.shape, np.float32) * np.float32(0.1)


def fastest(run, rounds):
    best = float('inf')
    for _ in range(rounds):
        time.sleep(SETTLE_SECONDS)
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def measure(name, batches, rounds, exports, directory):
    import onnxruntime
    from cct.net import Net
    from cct.proto import caffe_pb2
    net = Net(os.path.join(SHARED, 'nets', NETS[name]), caffe_pb2.TEST)
    random_weights(net, np.random.default_rng(0))
    path = os.path.join(directory, name + '.onnx')
    export_seconds = fastest(lambda: net.export_onnx(path, dynamic_batch=True), exports)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = os.cpu_count()
    session = onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    data = net.inputs[0]
    rows = []
    for batch in batches:
        x = np.random.default_rng(batch).standard_normal(
            (batch,) + net.blobs[data].shape[1:]).astype(np.float32)
        net.blobs[data].reshape(*x.shape)
        net.reshape()
        net.blobs[data].data[...] = x

        def cct_forward():
            net.forward()

        def ort_forward():
            return session.run(None, {data: x})

        cct_forward()
        want = net.blobs[net.outputs[0]].data
        got = ort_forward()[0]
        error = float(np.abs(got - want).max() / np.abs(want).max())
        assert error < 1e-4, '%s batch %d: ORT and cct disagree (%.3g)' % (name, batch, error)
        cct_best = ort_best = float('inf')
        for turn in range(rounds):
            # Alternate who goes first: a turn right after the other's may pay for its caches.
            order = (cct_forward, ort_forward) if turn % 2 == 0 else (ort_forward, cct_forward)
            for run in order:
                seconds = fastest(run, 1)
                if run is cct_forward:
                    cct_best = min(cct_best, seconds)
                else:
                    ort_best = min(ort_best, seconds)
        rows.append({'batch': batch, 'cct_ms': cct_best * 1e3, 'ort_ms': ort_best * 1e3,
                     'ort_over_cct': ort_best / cct_best})
    return {'net': name, 'export_s': export_seconds, 'file_mb': os.path.getsize(path) / 1e6,
            'parameters': sum(b.count for b in net.learnable_params), 'inference': rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--nets', default='resnet50,caffenet')
    parser.add_argument('--batches', default='1,16')
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--exports', type=int, default=2)
    parser.add_argument('--json', default=os.path.join(HERE, 'results', 'onnx_export.json'))
    args = parser.parse_args(argv)
    import onnxruntime
    from cct.log import init_log
    init_log(1)   # the nets' construction log would bury the table
    batches = [int(b) for b in args.batches.split(',')]
    results = []
    with tempfile.TemporaryDirectory() as directory:
        for name in args.nets.split(','):
            results.append(measure(name, batches, args.rounds, args.exports, directory))
            r = results[-1]
            print('%-9s export %.2f s, %.1f MB (%d parameters)' % (
                name, r['export_s'], r['file_mb'], r['parameters']))
            for row in r['inference']:
                print('          batch %3d: cct %8.1f ms, ORT %8.1f ms, ORT / cct %.2fx' % (
                    row['batch'], row['cct_ms'], row['ort_ms'], row['ort_over_cct']))
            sys.stdout.flush()
    report = {'date': time.strftime('%Y-%m-%d'), 'machine': platform.processor() or
              platform.machine(), 'cores': os.cpu_count(),
              'onnxruntime': onnxruntime.__version__, 'rounds': args.rounds, 'results': results}
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
            f.write('\n')


if __name__ == '__main__':
    main()
