"""cct vs PyTorch, time per training iteration (forward, backward, SGD update) on Caffe's classic
nets and the model zoo's, with cct's fraction of the GEMM time bound and peak memory.

Each contender runs in its own worker process (so peak RSS is its own); the driver alternates one
iteration of each and compares their fastest iterations, because the host is noisy. The net comes
from the same prototxt for both (PyTorch's copy is built by torch_reference.py). PyTorch is optional:
`pip install torch==2.13.0`; without it only cct's side is measured.

LeNet's and CIFAR-10 quick's nets come with cct (examples/); CaffeNet's, AlexNet's and GoogLeNet's
are Caffe's own, read from Caffe's reference material: ../shared/nets next to the checkout, or
$CCT_SHARED/nets. Without it the default table has the first two rows only (the others are named
as skipped), and asking for one of those nets by name is an error saying where it was looked for.

    python benchmarks/compare_pytorch.py                       # the default table
    python benchmarks/compare_pytorch.py --nets caffenet:64 --rounds 5
    python benchmarks/compare_pytorch.py --device opencl:0 --no-torch   # cct on an accelerator
    python benchmarks/compare_pytorch.py --device cuda:0       # both on one NVIDIA GPU
    python benchmarks/compare_pytorch.py --zoo   # ResNet-50, MobileNet v1/v2, SqueezeNet, GoogLeNet

The zoo's deploy nets (../shared/nets/zoo) are trained as their train_val would train them (see
training_net_param). Nets with BatchNorm also race PyTorch's folded form (each BatchNorm + Scale
as one BatchNorm2d with its affine weights). Every row also gives cct's peak memory with a diff
buffer per blob (``unshared``): the memory before the diff sharing of `cct train` (Net.share_diffs).

``--device`` runs cct's side on any device cct names (``cpu``, ``opencl:N``, ``cuda:N``). With
``cuda:N`` PyTorch runs on the same GPU (``cuda:N`` in both numberings: CuPy and PyTorch both count
the GPUs CUDA lists), the default nets are the issue's GPU table (CaffeNet and AlexNet at batch 256,
GoogLeNet at 64), each contender's peak device memory is reported (PyTorch's
``max_memory_allocated`` and ``max_memory_reserved``; cct's peak of CuPy pool memory in use, by a
CuPy memory hook, and the pool's size), and the GEMM bound is cuBLAS's sgemm rate on the same
GPU. Otherwise PyTorch stays on the CPU. Each cct iteration ends with the loss read back, and each
PyTorch iteration with ``torch.cuda.synchronize``, so both wait for the device.
OpenCL on PoCL (a CPU OpenCL) is a correctness path: its figures are not a speed claim.
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.normpath(os.path.join(HERE, '..', 'examples'))
SHARED = os.path.abspath(os.environ.get('CCT_SHARED', os.path.join(HERE, '..', '..', 'shared')))

# name: (prototxt, input C, H, W). The ImageNet nets are Caffe's, from the reference material.
NETS = {
    'lenet': (os.path.join(EXAMPLES, 'mnist', 'lenet_train_test.prototxt'), (1, 28, 28)),
    'cifar10_quick': (os.path.join(EXAMPLES, 'cifar10', 'cifar10_quick_train_test.prototxt'),
                      (3, 32, 32)),
    'caffenet': (os.path.join(SHARED, 'nets', 'bvlc_reference_caffenet', 'train_val.prototxt'),
                 (3, 227, 227)),
    'alexnet': (os.path.join(SHARED, 'nets', 'bvlc_alexnet', 'train_val.prototxt'), (3, 227, 227)),
    'googlenet': (os.path.join(SHARED, 'nets', 'bvlc_googlenet', 'train_val.prototxt'),
                  (3, 224, 224)),
    'resnet50': (os.path.join(SHARED, 'nets', 'zoo', 'resnet50_deploy.prototxt'), (3, 224, 224)),
    'mobilenet': (os.path.join(SHARED, 'nets', 'zoo', 'mobilenet_deploy.prototxt'),
                  (3, 224, 224)),
    'mobilenet_v2': (os.path.join(SHARED, 'nets', 'zoo', 'mobilenet_v2_deploy.prototxt'),
                     (3, 224, 224)),
    'squeezenet': (os.path.join(SHARED, 'nets', 'zoo', 'squeezenet_v1.1_train_val.prototxt'),
                   (3, 227, 227)),
}
DEFAULT = ['lenet:64', 'cifar10_quick:100', 'caffenet:64', 'alexnet:64', 'caffenet:256',
           'googlenet:32']
DEFAULT_CUDA = ['caffenet:256', 'alexnet:256', 'googlenet:64']
# The model zoo's nets (--zoo): BatchNorm + Scale, residual Eltwise sums, depthwise convolutions.
ZOO = ['resnet50:16', 'mobilenet:32', 'mobilenet_v2:32', 'squeezenet:32', 'googlenet:32']
# Worker kinds: cct as `cct train` runs it; cct with a diff buffer per blob (only its peak memory
# is measured: the "before" of the diff sharing); PyTorch's translation; and PyTorch's with each
# BatchNorm + Scale folded into one BatchNorm2d (its best form; only for nets with BatchNorm).
KINDS = {'cct': 'cct', 'cct_unshared': 'cct, unshared diffs', 'torch': 'PyTorch',
         'torch_folded': 'PyTorch folded'}
SETTLE_SECONDS = 0.5   # after the driver's own BLAS call, until its threads stop spinning
# Iterations shorter than this run in bursts of BURST per turn: a training loop runs them back to
# back, while the first after the other contender's turn pays for that one's still-spinning
# threads and its evicted caches (LeNet's 20 ms iteration took 27 ms that way).
SHORT_SECONDS = 1.0
BURST = 3
# ... and at least this long: LeNet's 7 ms iterations, three to a turn after the other's turn and
# the BLAS measurement, ran 20-50% slower than back to back (their threads were asleep, their
# cores idle), where a turn of 0.2 s reaches the training loop's pace.
TURN_SECONDS = 0.2
DATA_TYPES = ('Data', 'ImageData', 'HDF5Data', 'MemoryData', 'WindowData')


def training_net_param(name, batch, chw=None):
    """The TRAIN-phase net of ``name`` with its data layer replaced by an Input of ``batch``
    (images of ``chw``, default the net's own).

    A deploy net (the zoo's) becomes the training net its train_val would be: its Input also
    gives a label, its final Softmax becomes a SoftmaxWithLoss, its BatchNorms lose
    ``use_global_stats: true`` (so they normalise by the batch, as in Caffe's TRAIN default), and
    ``force_backward`` goes (no data gradient, which training does not compute).
    """
    from cct.io import read_net_text
    from cct.netgraph import filter_net
    from cct.proto import caffe_pb2
    path, own_chw = NETS[name]
    chw = tuple(chw or own_chw)
    param = read_net_text(path)
    param.state.phase = caffe_pb2.TRAIN
    param = filter_net(param)
    param.ClearField('force_backward')
    layers = list(param.layer)
    deploy = not any(layer.type in DATA_TYPES for layer in layers)
    del param.layer[:]
    for index, layer in enumerate(layers):
        if layer.type in DATA_TYPES or (deploy and layer.type == 'Input'):
            data = param.layer.add(name=layer.name, type='Input')
            data.top.extend(layer.top[:1])
            data.input_param.shape.add().dim.extend((batch,) + chw)
            if len(layer.top) > 1 or deploy:
                data.top.append(layer.top[1] if len(layer.top) > 1 else 'label')
                data.input_param.shape.add().dim.append(batch)
        elif deploy and layer.type == 'Softmax' and index == len(layers) - 1:
            loss = param.layer.add(name='loss', type='SoftmaxWithLoss')
            loss.bottom.extend([layer.bottom[0], 'label'])
            loss.top.append('loss')
        elif layer.type != 'Accuracy':
            copied = param.layer.add()
            copied.CopyFrom(layer)
            if deploy and layer.type == 'BatchNorm':
                copied.batch_norm_param.ClearField('use_global_stats')
    return param, (batch,) + chw


def select_nets(specs, explicit):
    """[(name, batch)] of the ``name:batch`` specs whose prototxt is here, and a note naming those
    that are not. A net asked for by name (``explicit``) that is not here is an error."""
    chosen, absent = [], []
    for spec in specs:
        name, _, batch = spec.partition(':')
        if name not in NETS or not batch.isdigit() or int(batch) < 1:
            raise SystemExit('compare_pytorch.py: %r is not NET:BATCH with NET one of %s'
                             % (spec, ', '.join(NETS)))
        if os.path.isfile(NETS[name][0]):
            chosen.append((name, int(batch)))
        elif explicit:
            raise SystemExit('compare_pytorch.py: %s needs Caffe\'s reference material: %s not '
                             'found (set CCT_SHARED to the folder that holds nets/)'
                             % (name, NETS[name][0]))
        else:
            absent.append(spec)
    note = None
    if absent:
        note = ('skipping %s: their prototxts are Caffe\'s, looked for in %s (set CCT_SHARED to '
                'the folder of Caffe\'s reference material that holds nets/)'
                % (', '.join(absent), os.path.join(SHARED, 'nets')))
    return chosen, note


def gemm_flops(net):
    """FLOPs of the GEMMs one cct training iteration performs (conv/deconv/inner product:
    forward, weight gradient, and data gradient where the bottom needs one)."""
    total = 0
    for layer, bottom, top, need in zip(net.layers, net.bottom_vecs, net.top_vecs,
                                        net.bottom_need_backward):
        if layer.type == 'Convolution':
            weights = layer.blobs[0]
            macs = sum(t.count for t in top) * weights.count // weights.shape[0]
        elif layer.type == 'InnerProduct':
            macs = top[0].count * layer.blobs[0].count // layer.blobs[0].shape[
                1 if layer.transpose else 0]
        else:
            continue
        passes = 1 + int(layer.param_propagate_down[0]) + int(any(need))
        total += 2 * macs * passes
    return total


def is_cuda(device):
    return device.startswith('cuda')


def blas_rate(repeats=5, device='cpu'):
    """Measured sgemm GFLOP/s of numpy's BLAS (all cores) on a 2048^3 product, or of cuBLAS (through
    CuPy) on a 4096^3 one on ``device`` when it is a CUDA GPU (best of ``repeats``)."""
    if is_cuda(device):
        return cublas_rate(int(device.partition(':')[2] or 0), repeats)
    a = np.random.rand(2048, 2048).astype(np.float32)
    b = np.random.rand(2048, 2048).astype(np.float32)
    out = np.empty_like(a)
    best = min(_timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
    return 2 * 2048 ** 3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cublas_rate(index, repeats, size=4096):
    import cupy
    with cupy.cuda.Device(index):
        a = cupy.random.rand(size, size, dtype=np.float32)
        b = cupy.random.rand(size, size, dtype=np.float32)
        out = cupy.empty_like(a)

        def product():
            cupy.matmul(a, b, out=out)
            cupy.cuda.get_current_stream().synchronize()
        product()
        best = min(_timed(product) for _ in range(repeats))
        a = b = out = None   # noqa: F841  (their blocks go back to CUDA below)
        cupy.get_default_memory_pool().free_all_blocks()
    return 2 * size ** 3 / best / 1e9


class CupyPeak:
    """The most bytes CuPy's memory pool has handed out at once (its hook sees every malloc and
    free, so a peak inside an iteration counts), and the pool's own size (what it holds from CUDA,
    freed blocks included: PyTorch's 'reserved')."""

    def __init__(self):
        from cupy.cuda import memory_hook

        class Hook(memory_hook.MemoryHook):
            name = 'cct_peak'

            def __init__(hook):
                hook.in_use = hook.peak = 0

            def malloc_postprocess(hook, **kw):
                hook.in_use += kw['mem_size']
                hook.peak = max(hook.peak, hook.in_use)

            def free_postprocess(hook, **kw):
                hook.in_use -= kw['mem_size']
        self.hook = Hook()
        self.hook.__enter__()

    def report(self):
        import cupy
        return {'peak_device_mb': self.hook.peak / 2 ** 20,
                'device_pool_mb': cupy.get_default_memory_pool().total_bytes() / 2 ** 20}


# ---------------------------------------------------------------------------------- workers
def cct_worker(name, batch, device='cpu', share_diffs=True):
    from cct import runtime
    from cct import solver as cct_solver
    from cct.proto import caffe_pb2
    param, shape = training_net_param(name, batch)
    solver_param = caffe_pb2.SolverParameter(base_lr=0.01, momentum=0.9, weight_decay=0.0005,
                                             lr_policy='fixed', max_iter=1000000, display=0,
                                             snapshot_after_train=False, random_seed=1)
    solver_param.train_net_param.CopyFrom(param)
    memory = CupyPeak() if is_cuda(device) else None   # before the net allocates anything
    runtime.use_device(device)
    solver = cct_solver.SGDSolver(solver_param)
    net = solver.net
    # As `cct train` runs it: no script can read a blob's diff between the solver's steps.
    net.share_diffs(share_diffs)
    rng = np.random.default_rng(0)
    net.blobs['data'].data[...] = rng.standard_normal(shape)
    if 'label' in net.blobs:
        net.blobs['label'].data[...] = rng.integers(0, 10, batch)
    info = {'gemm_flops': gemm_flops(net), 'device': str(net.device),
            'device_name': net.device.describe()['name']}
    return (lambda: solver.step(1)), info, (memory.report if memory else dict)


def torch_worker(name, batch, device='cpu', fold=False):
    """PyTorch's step on the same GPU as cct's when ``device`` is ``cuda:N``, else on the CPU."""
    import torch
    from torch_reference import TorchNet
    torch.manual_seed(0)
    where = torch.device(device if is_cuda(device) else 'cpu')
    param, shape = training_net_param(name, batch)
    model = TorchNet(param, {'data': shape, 'label': (batch,)},
                     fold_batch_norm=fold).to(where)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005)
    data = torch.randn(shape).to(where)
    label = torch.randint(0, 10, (batch,)).to(where)

    def step():
        optimizer.zero_grad(set_to_none=False)
        loss = model({'data': data, 'label': label})
        loss.backward()
        optimizer.step()
        if where.type == 'cuda':
            torch.cuda.synchronize(where)

    def memory():
        if where.type != 'cuda':
            return {}
        return {'peak_device_mb': torch.cuda.max_memory_allocated(where) / 2 ** 20,
                'device_pool_mb': torch.cuda.max_memory_reserved(where) / 2 ** 20}
    info = {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'device': str(where)}
    if where.type == 'cuda':
        info['device_name'] = torch.cuda.get_device_name(where)
    return step, info, memory


def serve(kind, name, batch, device):
    """Worker loop: one line per command on stdin ('run' or 'quit'), one JSON line back."""
    if kind.startswith('cct'):
        step, info, memory = cct_worker(name, batch, device, share_diffs=kind == 'cct')
    else:
        step, info, memory = torch_worker(name, batch, device, fold=kind == 'torch_folded')
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        if line.strip() == 'run':
            print(json.dumps({'seconds': _timed(step)}), flush=True)
        else:
            break
    print(json.dumps(dict(memory(), peak_rss_mb=peak_rss_mb())), flush=True)


def peak_rss_mb():
    """This process's peak resident set (VmHWM). getrusage's ru_maxrss would also count the
    driver's memory at the fork that started the worker (Linux keeps it across exec)."""
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Worker:
    def __init__(self, kind, name, batch, device='cpu'):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), '--worker', kind, '--nets',
             '%s:%d' % (name, batch), '--device', device], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=HERE)
        self.info = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError('benchmark worker died (see its stderr above)')
        return json.loads(line)

    def run(self):
        self.proc.stdin.write('run\n')
        self.proc.stdin.flush()
        return self._read()['seconds']

    def finish(self):
        """{'peak_rss_mb', and on a GPU 'peak_device_mb', 'device_pool_mb'}."""
        self.proc.stdin.write('quit\n')
        self.proc.stdin.flush()
        memory = self._read()
        self.proc.wait()
        return memory


def have_torch():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def has_batch_norm(name):
    param, _ = training_net_param(name, 1)
    return any(layer.type == 'BatchNorm' for layer in param.layer)


def unshared_memory(name, batch, device, iterations):
    """cct's peak memory with one diff buffer per blob (the memory before diff sharing): a worker
    run for ``iterations`` untimed iterations, alone, before the timed contenders start."""
    worker = Worker('cct_unshared', name, batch, device)
    for _ in range(iterations):
        worker.run()
    return worker.finish()


def compare(name, batch, rounds, warmup, with_torch, device='cpu'):
    unshared = unshared_memory(name, batch, device, max(warmup, 1))
    contenders = {'cct': Worker('cct', name, batch, device)}
    if with_torch:
        contenders['torch'] = Worker('torch', name, batch, device)
        if has_batch_norm(name):
            contenders['torch_folded'] = Worker('torch_folded', name, batch, device)
    times = {k: [] for k in contenders}
    first = {}
    for _ in range(max(warmup, 1)):   # the warm-up also times the iteration for the burst size
        for kind, worker in contenders.items():
            first[kind] = worker.run()
    burst = {kind: 1 if seconds >= SHORT_SECONDS else max(BURST, math.ceil(TURN_SECONDS / seconds))
             for kind, seconds in first.items()}
    # The BLAS rate is measured between rounds too, so the GEMM bound is taken at the machine's
    # best speed during this net's run, as the contenders' times are. Its BLAS threads busy-wait
    # for a while after the product (OpenBLAS spins ~2^28 cycles), so the next iteration waits
    # until they sleep; and the contenders take turns at going first (rotating), so whatever one
    # leaves running (a runtime's spinning threads) slows the others no more than itself.
    rates = []
    for r in range(rounds):
        order = list(contenders.items())
        order = order[r % len(order):] + order[:r % len(order)]
        # (Rotation alone: reversing every other round too undid it for two contenders, so cct
        # always went first.)
        for kind, worker in order:
            times[kind].extend(worker.run() for _ in range(burst[kind]))
        rates.append(blas_rate(repeats=1, device=device))
        time.sleep(SETTLE_SECONDS)
    memory = {k: w.finish() for k, w in contenders.items()}
    memory['cct_unshared'] = unshared
    row = {'net': name, 'batch': batch,
           'cct_ms': 1e3 * min(times['cct']), 'cct_median_ms': 1e3 * float(np.median(times['cct'])),
           'gemm_gflop': contenders['cct'].info['gemm_flops'] / 1e9,
           'blas_gflops': max(rates), 'device': contenders['cct'].info['device'],
           'device_name': contenders['cct'].info['device_name']}
    for kind, suffix in (('torch', ''), ('torch_folded', '_folded')):
        if kind in contenders:
            row.update({kind + '_ms': 1e3 * min(times[kind]),
                        kind + '_median_ms': 1e3 * float(np.median(times[kind])),
                        'ratio' + suffix: min(times['cct']) / min(times[kind])})
    for kind in memory:
        for key in ('peak_rss_mb', 'peak_device_mb', 'device_pool_mb'):
            if key in memory[kind]:
                row['%s_%s' % (kind, key)] = memory[kind][key]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--nets', nargs='+', default=None,
                        help='name:batch, e.g. caffenet:64 (default: %s)' % ' '.join(DEFAULT))
    parser.add_argument('--rounds', type=int, default=5, help='timed iterations per contender')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--json', default=None,
                        help='where the table goes (default results/compare_pytorch.json, or '
                             'compare_pytorch_<device>.json for another device)')
    parser.add_argument('--device', default='cpu',
                        help="the device cct trains on: cpu, opencl:N or cuda:N")
    parser.add_argument('--no-torch', action='store_true', help='measure cct only')
    parser.add_argument('--zoo', action='store_true',
                        help='the model zoo\'s nets (%s) instead of the default table; written '
                             'to results/compare_pytorch_zoo.json' % ' '.join(ZOO))
    parser.add_argument('--worker', choices=sorted(KINDS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, batch = args.nets[0].split(':')
        serve(args.worker, name, int(batch), args.device)
        return
    from compare_tables import host_description, markdown_table, print_header, print_row
    cuda = is_cuda(args.device)
    nets, note = select_nets(args.nets or (ZOO if args.zoo else DEFAULT_CUDA if cuda else DEFAULT),
                             explicit=args.nets is not None)
    if note:
        print(note)
    if args.json is None:
        suffix = ('_zoo' if args.zoo and not args.nets else '') + \
            ('' if args.device == 'cpu' else '_' + args.device.replace(':', ''))
        args.json = os.path.join(HERE, 'results', 'compare_pytorch%s.json' % suffix)
    with_torch = not args.no_torch and have_torch()
    if not with_torch and not args.no_torch:
        print('PyTorch is not installed (pip install torch==2.13.0): measuring cct only.')
    rate = blas_rate(device=args.device)
    host = host_description()
    print('%s sgemm: %.0f GFLOP/s (measured again between rounds: each net\'s GEMM bound takes '
          'the best); %s' % ('cuBLAS' if cuda else 'numpy BLAS', rate, host))
    rows = []
    # MB: peak resident memory on the CPU; on a GPU, the peak device memory in use (pool sizes
    # are in the JSON).
    memory_key = 'peak_device_mb' if cuda else 'peak_rss_mb'
    print('cct runs on %s; "folded": PyTorch with BatchNorm+Scale as one BatchNorm2d; '
          '"unshared": cct\'s peak with a diff buffer per blob' % args.device)
    print_header()
    for name, batch in nets:
        row = compare(name, batch, args.rounds, args.warmup, with_torch, args.device)
        row['blas_gflops'] = max(row['blas_gflops'], rate)
        row['gemm_bound_fraction'] = row['gemm_gflop'] / row['blas_gflops'] * 1e3 / row['cct_ms']
        rows.append(row)
        print_row(row, memory_key)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, 'w') as f:
        # the best rate of the whole run: the first measurement, or any taken between rounds
        best = max([rate] + [row['blas_gflops'] for row in rows])
        json.dump({'blas_gflops': best, 'first_blas_gflops': rate, 'cores': os.cpu_count(),
                   'host': host, 'rounds': args.rounds, 'device': args.device, 'rows': rows}, f,
                  indent=2)
    print('wrote %s\n\n%s' % (args.json, markdown_table(rows, host, memory_key)))


if __name__ == '__main__':
    main()
