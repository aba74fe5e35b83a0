"""The hybrid split's balance and cost: a training iteration (forward, backward, SGD update) of a net
whose batch is split across the CPU and PoCL's OpenCL device, with the auto split against a sweep of
fixed splits, and against the CPU alone.

Two devices of very different speed: cct's CPU device (one OpenMP thread per core) beside PoCL held
to one thread (POCL_MAX_PTHREAD_COUNT, set before PoCL starts). The auto split should give the CPU
the larger share and an iteration time within 15% of the best fixed split. On this machine both
devices share the same cores, so the hybrid cannot beat the CPU alone: the last figure is the
honest cost of splitting (the threads, the synchronisations, the transfers).

Each figure is the fastest of --iterations timed iterations (after --warmup untimed ones) in each
of --rounds rounds; the configurations alternate within a round (each round starting one later),
so that a busy spell of a shared host hits them alike, and the fastest iteration is the one least
disturbed by other jobs.
``--cpu-threads 1`` holds the CPU device to one core too (OMP_NUM_THREADS), so that each device
has a core of its own on a two-core machine: the case where splitting can gain.

    python benchmarks/hybrid_split.py [--net lenet|cifar10_quick] [--batch 128] [--cpu-threads N]
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault('POCL_MAX_PTHREAD_COUNT', '1')
if '--cpu-threads' in sys.argv[:-1]:
    # Before cct's kernels load: OpenMP reads it once.
    os.environ['OMP_NUM_THREADS'] = sys.argv[sys.argv.index('--cpu-threads') + 1]

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

NETS = {'lenet': 'lenet_train_test.prototxt', 'cifar10_quick': 'cifar10_quick_train_test.prototxt'}


def shared_dir():
    return os.environ.get('CCT_SHARED') or os.path.join(os.path.dirname(HERE), '..', 'shared')


def train_param(name, batch):
    """The net's TRAIN phase with an Input of ``batch`` random-data-sized images for its Data."""
    from cct.io import read_net_text
    from cct.netgraph import filter_net
    from cct.proto import caffe_pb2
    param = read_net_text(os.path.join(shared_dir(), 'nets', NETS[name]))
    param.state.phase = caffe_pb2.TRAIN
    param = filter_net(param)
    shape = {'lenet': (1, 28, 28), 'cifar10_quick': (3, 32, 32)}[name]
    layers = list(param.layer)
    del param.layer[:]
    for layer in layers:
        if layer.type == 'Data':
            data = param.layer.add(name='data', type='Input', top=['data', 'label'])
            data.input_param.shape.add().dim.extend((batch,) + shape)
            data.input_param.shape.add().dim.append(batch)
        else:
            param.layer.add().CopyFrom(layer)
    return param


def make_runner(param, devices=None, split=None):
    """(step function, net) for one configuration: devices None is the plain CPU Net."""
    import logging
    from cct.log import logger
    from cct.net import Net
    from cct.parallel import HybridNet
    from cct.proto import caffe_pb2
    from cct.solver import SGDSolver
    logger.setLevel(logging.WARNING)
    net = Net(param, device='cpu') if devices is None else \
        HybridNet(param, devices=devices, split=split)
    rng = np.random.default_rng(0)
    classes = 10
    net.blobs['data'].data[...] = rng.random(net.blobs['data'].shape, dtype=np.float32)
    net.blobs['label'].data[...] = rng.integers(0, classes, net.blobs['label'].shape)
    solver = SGDSolver(caffe_pb2.SolverParameter(base_lr=0.0, lr_policy='fixed', momentum=0.9,
                                                 weight_decay=5e-4), net=net)

    def step():
        net.clear_param_diffs()
        net.forward_from_to()
        net.backward_from_to()
        solver.apply_update()
        net.device.synchronize()
    return step, net


def time_steps(step, warmup, iterations):
    for _ in range(warmup):
        step()
    best = float('inf')
    for _ in range(iterations):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--net', default='lenet', choices=sorted(NETS))
    parser.add_argument('--batch', type=int, default=128)
    parser.add_argument('--fractions', type=int, default=10,
                        help='the sweep gives the CPU 0, 1/N, ..., N/N of the batch')
    parser.add_argument('--settle', type=int, default=15,
                        help='untimed iterations of each configuration once built')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--iterations', type=int, default=10)
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--cpu-threads', type=int, default=None,
                        help="the CPU device's OpenMP threads (default: one per core)")
    parser.add_argument('--out', default=os.path.join(HERE, 'results', 'hybrid_split.json'))
    args = parser.parse_args()
    from cct.devices import get_device
    ocl = get_device('opencl:0')
    devices = ['cpu', 'opencl:0']
    param = train_param(args.net, args.batch)
    sweep = [k / args.fractions for k in range(args.fractions + 1)]
    configs = [('cpu alone', None, None)]
    configs += [('fixed %.2f,%.2f' % (f, 1 - f), devices, [f, 1 - f]) for f in sweep]
    configs.append(('auto', devices, 'auto'))
    runners = {}
    for label, chosen, split in configs:
        runners[label] = make_runner(param, chosen, split)
        # The first few dozen iterations of a new net run slower (allocation, caches).
        time_steps(runners[label][0], args.settle, 0)
    # The auto split measures itself during its first iterations; let it settle before timing.
    step, net = runners['auto']
    for _ in range(50):
        if net.splitter.settled:
            break
        step()
    best = {}
    for turn in range(args.rounds):
        # Each round starts one configuration later, so none always follows the same one.
        for label, _, _ in configs[turn % len(configs):] + configs[:turn % len(configs)]:
            seconds = time_steps(runners[label][0], args.warmup, args.iterations)
            best[label] = min(best.get(label, float('inf')), seconds)
    fixed = {label: seconds for label, seconds in best.items() if label.startswith('fixed')}
    best_fixed = min(fixed, key=fixed.get)
    auto_shares = runners['auto'][1].shares
    result = {
        'net': args.net, 'batch': args.batch,
        'statistic': 'fastest of %d iterations in each of %d rounds' % (args.iterations,
                                                                         args.rounds),
        'devices': {'cpu': get_device('cpu').describe()['name'] + ', OMP_NUM_THREADS=%s'
                    % os.environ.get('OMP_NUM_THREADS', 'one per core'),
                    'opencl:0': ocl.describe()['name'] + ', POCL_MAX_PTHREAD_COUNT=%s'
                    % os.environ['POCL_MAX_PTHREAD_COUNT']},
        'ms_per_iteration': {label: round(seconds * 1e3, 2) for label, seconds in best.items()},
        'auto_shares': dict(zip(devices, auto_shares)),
        # What the auto split timed before it settled (median wall ms of a pass, no update).
        'auto_timed': [{'shares': dict(zip(devices, trial)), 'ms': round(wall * 1e3, 2)}
                       for trial, wall in zip(runners['auto'][1].splitter.trials,
                                              runners['auto'][1].splitter.walls)],
        'best_fixed': best_fixed,
        'auto_over_best_fixed': round(best['auto'] / fixed[best_fixed], 3),
        'auto_over_cpu_alone': round(best['auto'] / best['cpu alone'], 3),
        'faster_device_larger_share': None,
    }
    # The faster device on its own: the sweep's ends give each device the whole batch.
    cpu_only, ocl_only = fixed['fixed 1.00,0.00'], fixed['fixed 0.00,1.00']
    faster = 0 if cpu_only < ocl_only else 1
    result['faster_device'] = devices[faster]
    result['faster_device_larger_share'] = auto_shares[faster] > auto_shares[1 - faster]
    for label, seconds in best.items():
        print('%-22s %9.2f ms' % (label, seconds * 1e3))
    print('auto shares: %s; best fixed: %s; auto / best fixed = %.3f; auto / cpu alone = %.3f'
          % (result['auto_shares'], best_fixed, result['auto_over_best_fixed'],
             result['auto_over_cpu_alone']))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=1)
        f.write('\n')


if __name__ == '__main__':
    main()
