"""Compute-group training on Ray against PyTorch DistributedDataParallel (gloo): updates per second
and time to a target test accuracy on examples/digits (LeNet), and the overhead of one update
(serialise, transfer, apply) against the workers' compute, extrapolated to CaffeNet's 61 M params.

    python examples/digits/create_digits.py && pip install torch==2.13.0 ray
    python benchmarks/grouped_training.py [--layouts 1x1,1x2,2x1] [--target 0.97] [--json F]

Layout GxK = G groups of K workers, each worker 1/(G*K) of the cores (all of them share one Ray
started here). DDP runs K*G ranks synchronously on the same cores (the same share of them each,
batch 64 per rank, as each cct worker), so it matches 1xK statistically and every layout in
hardware. Both test
the 300 test digits every --test-interval updates; the test time counts in both.
"""
import argparse
import json
import logging
import os
import re
import secrets
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
sys.path.insert(0, ROOT)

from cct.distributed import train_grouped  # noqa: E402
from cct.distributed.cluster import usable_cores  # noqa: E402


def solver_file(folder, max_iter, test_interval):
    net = open(os.path.join(ROOT, 'examples/digits/lenet_train_test.prototxt')).read()
    net = net.replace('examples/digits/', os.path.join(ROOT, 'examples/digits') + '/')
    with open(os.path.join(folder, 'net.prototxt'), 'w') as f:
        f.write(net)
    text = open(os.path.join(ROOT, 'examples/digits/lenet_solver.prototxt')).read()
    text = re.sub(r'net: ".*"', 'net: "%s"' % os.path.join(folder, 'net.prototxt'), text)
    text = re.sub(r'max_iter: \d+', 'max_iter: %d' % max_iter, text)
    text = re.sub(r'test_interval: \d+', 'test_interval: %d' % test_interval, text)
    text = re.sub(r'snapshot_prefix: ".*"', 'snapshot_prefix: "%s/lenet"' % folder, text)
    text += '\nsnapshot_after_train: false\n'
    path = os.path.join(folder, 'solver.prototxt')
    with open(path, 'w') as f:
        f.write(text)
    return path


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        self.lines.append((record.created, record.getMessage()))


def _logged(train):
    """Run ``train()`` and return the cct log lines it wrote, with their times."""
    handler = _Lines()
    log = logging.getLogger('cct')
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.INFO)
    try:
        result = train()
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    return result, handler.lines


def _seconds_to(lines, target, begin):
    for stamp, line in lines:
        match = re.search(r'Test net output #0: accuracy = (\S+)', line)
        if match and float(match.group(1)) >= target:
            return stamp - begin
    return None


def run_plain(path, target):
    """Plain ``cct train`` in this process on all the cores: the baseline of one update."""
    from cct.solver import get_solver
    solver, lines = _logged(lambda: _solve(get_solver(path)))
    begin = next(t for t, line in lines if line.startswith('Solving '))
    end = next(t for t, line in reversed(lines) if line.startswith('Optimization Done'))
    return {'layout': 'plain', 'updates': solver.iter, 'updates_per_s': solver.iter / (end - begin),
            'seconds_to_target': _seconds_to(lines, target, begin)}


def _solve(solver):
    solver.solve()
    return solver


def run_cct(path, groups, group_size, target):
    cpus = round(usable_cores() / (groups * group_size), 4)
    started = time.time()
    trainer, lines = _logged(lambda: train_grouped(path, groups, group_size, worker_cpus=cpus,
                                                   timeout=600))
    elapsed = time.time() - started
    begin = next(t for t, line in lines if line.startswith('Solving '))
    end = next(t for t, line in reversed(lines) if line.startswith('Group staleness'))
    compute = [float(m.group(1)) for _, line in lines
               for m in [re.search(r'updates in all .*worker compute (\S+) s per update', line)]
               if m]
    staleness = [float(m.group(1)) for _, line in lines
                 for m in [re.search(r'updates in all .*staleness mean (\S+)', line)] if m]
    updates = trainer.iteration
    per_update = (end - begin) / updates
    return {'layout': '%dx%d' % (groups, group_size), 'updates': updates,
            'updates_per_s': updates / (end - begin),
            'seconds_to_target': _seconds_to(lines, target, begin),
            'wall_s_with_startup': elapsed, 'worker_compute_s': float(np.mean(compute)),
            # One group's round trip minus its compute is what an update costs beyond the math.
            'overhead_s_per_update': per_update * groups - float(np.mean(compute)),
            'mean_staleness': float(np.mean(staleness))}


def transfer_cost(ray, params):
    """Seconds for the server->worker model and worker->server gradient of ``params`` floats
    through Ray's object store between two actors (serialise + transfer, both ways)."""
    @ray.remote(num_cpus=0)
    class Holder:
        def model(self, n):
            return np.ones(n, np.float32)

        def gradient(self, model):
            return model * np.float32(0.5)

        def take(self, gradient):
            return float(gradient[0])
    server, worker = Holder.remote(), Holder.remote()
    ray.get([server.take.remote(np.zeros(1, np.float32)), worker.take.remote(np.zeros(1))],
            timeout=120)
    times = []
    for _ in range(3):
        started = time.perf_counter()
        model = server.model.remote(params)
        gradient = worker.gradient.remote(model)
        ray.get(server.take.remote(gradient), timeout=300)
        times.append(time.perf_counter() - started)
        del model, gradient
    for actor in (server, worker):
        ray.kill(actor)
    return min(times)


def apply_cost(params):
    """Seconds of the server's SGD step (momentum, weight decay; cct.kernels.update, the
    solver's own kernel) over ``params`` floats, best of 3."""
    from cct.kernels.update import sgd_step
    data, diff, history = (np.full(params, 0.5, np.float32) for _ in range(3))
    times = []
    for _ in range(3):
        started = time.perf_counter()
        sgd_step(data, diff, history, 1.0, np.float32(5e-4), False, np.float32(0.01),
                 np.float32(0.9))
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--layouts', default='1x1,1x2,2x1')
    parser.add_argument('--target', type=float, default=0.97)
    parser.add_argument('--max-iter', type=int, default=300)
    parser.add_argument('--test-interval', type=int, default=25)
    parser.add_argument('--no-torch', action='store_true')
    parser.add_argument('--json', default='')
    args = parser.parse_args(argv)
    os.environ.setdefault('RAY_AUTH_TOKEN', secrets.token_hex(16))
    import ray
    ray.init(address='local', num_cpus=usable_cores(), include_dashboard=False,
             object_store_memory=1_500_000_000, log_to_driver=False)
    # The machine's load (other processes on the same cores) is recorded: it moves every number.
    results = {'cores': usable_cores(), 'target': args.target, 'cct': [], 'ddp': [],
               'load_average_at_start': os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as folder:
        path = solver_file(folder, args.max_iter, args.test_interval)
        results['plain'] = run_plain(path, args.target)
        print(json.dumps(results['plain']), flush=True)
        for layout in args.layouts.split(','):
            groups, size = (int(v) for v in layout.split('x'))
            row = run_cct(path, groups, size, args.target)
            results['cct'].append(row)
            print(json.dumps(row), flush=True)
    lenet = 431080
    results['transfer_s'] = {'lenet_431k': transfer_cost(ray, lenet),
                             'caffenet_61m': transfer_cost(ray, 60965224)}
    results['apply_s'] = {'lenet_431k': apply_cost(lenet), 'caffenet_61m': apply_cost(60965224)}
    print(json.dumps(results['transfer_s']), json.dumps(results['apply_s']), flush=True)
    ray.shutdown()
    if not args.no_torch:
        from ddp_lenet import run_ddp
        for world in sorted({g * k for g, k in (map(int, l.split('x'))
                                                 for l in args.layouts.split(','))}):
            row = run_ddp(world, args.max_iter, args.test_interval, args.target)
            results['ddp'].append(row)
            print(json.dumps(row), flush=True)
    for row in results['cct']:
        same = [d for d in results['ddp'] if d['world'] == eval(row['layout'].replace('x', '*'))]
        if same:
            row['updates_per_s_vs_ddp'] = row['updates_per_s'] / same[0]['updates_per_s']
            if row['seconds_to_target'] and same[0]['seconds_to_target']:
                row['time_to_target_vs_ddp'] = row['seconds_to_target'] / \
                    same[0]['seconds_to_target']
    results['load_average_at_end'] = os.getloadavg()[0]
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    main()
