"""Omnivore's headline in cct's numbers: time to a target accuracy on examples/digits (LeNet) on
each shipped cluster description, simulated clock and real gradients - fully synchronous (one
group, momentum 0.9), fully asynchronous (one group per machine, momentum 0.9), the optimizer's
run (search included) and its chosen configuration trained from scratch - and, with --grid, the
exhaustive grid of fixed configurations the optimizer is judged against.

    python examples/digits/create_digits.py --output /tmp/digits
    python benchmarks/omnivore_simulation.py --digits /tmp/digits [--clusters laptop,gpu8]
        [--grid omnivore_cpu | --reuse-grid old.json] [--budget-factor 10] [--json results.json]
        [--seeds 0-11]

With several --seeds the optimizer runs once per jitter seed and a table says, seed by seed,
whether (a) its chosen configuration from scratch is within 10 % of the grid's best and (b) its
time with the search beats the synchronous and asynchronous baselines.

Every run uses the example's solver (base_lr 0.01, inv policy, batch 64) with a test every 25
updates, stops at the target or at --max-seconds simulated seconds, and seeds the jitter with 0.
"""
import argparse
import json
import os
import re
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
sys.path.insert(0, ROOT)

from cct import io as cct_io  # noqa: E402
from cct.log import init_log  # noqa: E402
from cct.distributed.cluster_spec import load_cluster  # noqa: E402
from cct.distributed.optimizer import Optimizer  # noqa: E402
from cct.distributed.simulator import SimulatedEvaluator  # noqa: E402
from cct.distributed.simulator import TRIAL_ROUNDS, TRIAL_UPDATES  # noqa: E402
from cct.distributed.simulator import quiet, simulate  # noqa: E402

MOMENTA = (0.0, 0.3, 0.6, 0.9)
RATES = (0.1, 0.01, 0.001)


def solver_file(digits, folder, max_iter):
    net = open(os.path.join(ROOT, 'examples/digits/lenet_train_test.prototxt')).read()
    net = net.replace('examples/digits/', os.path.abspath(digits) + '/')
    with open(os.path.join(folder, 'net.prototxt'), 'w') as f:
        f.write(net)
    text = open(os.path.join(ROOT, 'examples/digits/lenet_solver.prototxt')).read()
    text = re.sub(r'net: ".*"', 'net: "%s"' % os.path.join(folder, 'net.prototxt'), text)
    text = re.sub(r'max_iter: \d+', 'max_iter: %d' % max_iter, text)
    text = re.sub(r'test_interval: \d+', 'test_interval: 25', text)
    text = re.sub(r'display: \d+', 'display: 0', text)
    text = re.sub(r'snapshot_prefix: ".*"', 'snapshot_prefix: "%s/lenet"' % folder, text)
    path = os.path.join(folder, 'lenet_solver.prototxt')
    with open(path, 'w') as f:
        f.write(text)
    return path


def fixed(param, path, spec, groups, momentum, rate, args):
    started = time.perf_counter()
    with quiet():
        result = simulate(param, path, spec, groups, momentum=momentum, base_lr=rate,
                          target_accuracy=args.target, max_seconds=args.max_seconds)
    row = {'groups': groups, 'momentum': momentum, 'base_lr': rate,
           'seconds_per_iteration': result.seconds_per_iteration,
           'iterations_to_target': result.iterations_to_target,
           'time_to_target_s': result.time_to_target_s, 'diverged': result.diverged,
           'real_seconds': time.perf_counter() - started}
    print('  %2d groups, momentum %.1f, rate %g: %s s/iter, %s iterations, %s s to target%s'
          % (groups, momentum, rate, _g(row['seconds_per_iteration']),
             row['iterations_to_target'], _g(row['time_to_target_s']),
             ' (diverged)' if result.diverged else ''), flush=True)
    return row


def optimize(param, path, spec, name, seed, budget, args):
    """One optimizer run on ``spec`` with the jitter ``seed``; its report."""
    folder = os.path.join(args.workdir, name, 'seed%d' % seed)
    evaluator = SimulatedEvaluator(param, path, spec, folder, args.target, seed=seed,
                                   trial_updates=args.trial_updates,
                                   trial_rounds=args.trial_rounds)
    optimizer = Optimizer(evaluator, spec.group_counts(), budget_seconds=budget,
                          phase_seconds=args.phase_seconds or budget / 750,
                          epoch_seconds=args.epoch_seconds or budget / 15,
                          measurements=os.path.join(folder, 'measurements.jsonl'))
    started = time.perf_counter()
    chosen = optimizer.run()
    chosen['seed'] = seed
    chosen['real_seconds'] = time.perf_counter() - started
    print('  optimizer (seed %d, budget %.3g s): %s groups, momentum %s, rate %s; %s s to target '
          'with its search, %s s of it in trials, %s s of those thrown away (%d runs)'
          % (seed, budget, chosen['groups'], chosen['momentum'], chosen['base_lr'],
             _g(chosen['time_to_target_s']), _g(chosen['search_seconds_to_target']),
             _g(chosen['discarded_seconds_to_target']), len(chosen['tried'])), flush=True)
    return chosen


def seed_table(runs, entry, param, path, spec, args):
    """One row per seed: the configuration chosen, its time from scratch (the grid's, else a
    fixed run), the optimizer's time with its search, and whether (a) the first is within 10 %
    of the grid's best and (b) the second beats both baselines."""
    scratch = {(row['groups'], row['momentum'], row['base_lr']): row['time_to_target_s']
               for row in entry.get('grid', [])}
    best = entry.get('grid_best', {}).get('time_to_target_s')
    baselines = [entry[k]['time_to_target_s'] for k in ('sync', 'async')
                 if entry[k]['time_to_target_s'] is not None]
    rows = []
    print('  seed  chosen (groups, momentum, rate)  from scratch  with its search  (a)  (b)')
    for run in runs:
        key = (run['groups'], run['momentum'], run['base_lr'])
        if run['groups'] is not None and key not in scratch:
            scratch[key] = fixed(param, path, spec, *key, args)['time_to_target_s']
        alone, total = scratch.get(key), run['time_to_target_s']
        row = {'seed': run['seed'], 'groups': key[0], 'momentum': key[1], 'base_lr': key[2],
               'from_scratch_s': alone, 'time_to_target_s': total,
               'within_10_percent': None if best is None else
               alone is not None and alone <= 1.1 * best,
               'beats_baselines': total is not None and all(total < b for b in baselines)}
        rows.append(row)
        print('  %4d  %-31s  %-12s  %-15s  %-3s  %s' % (
            row['seed'], '%s, %s, %s' % key, _g(alone), _g(total),
            {None: '?', True: 'yes', False: 'no'}[row['within_10_percent']],
            'yes' if row['beats_baselines'] else 'no'))
    met = [sum(bool(r[k]) for r in rows) for k in ('within_10_percent', 'beats_baselines')]
    both = sum(bool(r['within_10_percent'] and r['beats_baselines']) for r in rows)
    print('  over %d seeds: (a) %d, (b) %d, both %d' % (len(rows), met[0], met[1], both))
    return rows


def _seeds(text):
    """'0-11' or '0,3,5' (or one number) as a list of seeds."""
    seeds = []
    for part in text.split(','):
        first, _, last = part.partition('-')
        try:
            span = range(int(first), int(last or first) + 1)
        except ValueError:
            span = None
        if not span:
            raise argparse.ArgumentTypeError('not a seed list: %r' % text)
        seeds.extend(span)
    return seeds


def _g(value):
    return '-' if value is None else '%.4g' % value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--digits', required=True, help='create_digits.py --output folder')
    parser.add_argument('--clusters', default='laptop,omnivore_cpu,gpu8')
    parser.add_argument('--grid', default='', help='clusters to run the exhaustive grid on')
    parser.add_argument('--target', type=float, default=0.97)
    parser.add_argument('--max-seconds', type=float, default=8.0,
                        help='simulated seconds per fixed run')
    parser.add_argument('--budget-factor', type=float, default=10.0,
                        help="the optimizer's budget in units of the synchronous run's time to "
                             'target; a trial gets 1/750 of it, an epoch 1/15, 50 trials (as '
                             "Omnivore's trials of 200 s and epochs of 10000 s)")
    parser.add_argument('--phase-seconds', type=float, default=None,
                        help='simulated seconds per trial (default: the budget / 750)')
    parser.add_argument('--epoch-seconds', type=float, default=None,
                        help='simulated seconds per epoch (default: the budget / 15)')
    parser.add_argument('--trial-updates', type=int, default=TRIAL_UPDATES,
                        help='updates on a model it updated that a trial runs at least')
    parser.add_argument('--trial-rounds', type=int, default=TRIAL_ROUNDS,
                        help='...and at least this many per group')
    parser.add_argument('--seeds', type=_seeds, default=[0],
                        help="the jitter seeds of the optimizer's runs, e.g. 0 or 0-11 or 0,3 "
                             '(the fixed runs use 0); with several, one optimizer run per seed '
                             'and a table of how often it met its goals')
    parser.add_argument('--workdir', default='/tmp/cct_omnivore_simulation')
    parser.add_argument('--json', default='')
    parser.add_argument('--reuse-grid', default='',
                        help='a results JSON of this script whose exhaustive grids are copied '
                             'for the clusters not in --grid (the fixed runs do not depend on '
                             'the optimizer)')
    args = parser.parse_args(argv)
    init_log(0)
    os.makedirs(args.workdir, exist_ok=True)
    path = solver_file(args.digits, args.workdir, 3000)
    param = cct_io.read_solver_text(path)
    report = {'target_accuracy': args.target, 'clusters': {}}
    for name in args.clusters.split(','):
        spec = load_cluster(os.path.join(ROOT, 'examples/clusters', name + '.json'))
        print('%s (%d machines)' % (name, spec.machine_count), flush=True)
        entry = {'sync': fixed(param, path, spec, 1, 0.9, 0.01, args),
                 'async': fixed(param, path, spec, spec.machine_count, 0.9, 0.01, args)}
        budget = args.budget_factor * (entry['sync']['time_to_target_s'] or args.max_seconds)
        runs = [optimize(param, path, spec, name, seed, budget, args) for seed in args.seeds]
        entry['optimizer'] = chosen = runs[0]
        if chosen['groups'] is not None:
            entry['chosen_fixed'] = fixed(param, path, spec, chosen['groups'],
                                          chosen['momentum'], chosen['base_lr'], args)
        if name in args.grid.split(','):
            entry['grid'] = [fixed(param, path, spec, g, m, r, args)
                             for g in spec.group_counts() for r in RATES for m in MOMENTA]
            reached = [row for row in entry['grid'] if row['time_to_target_s'] is not None]
            if reached:
                best = min(reached, key=lambda row: row['time_to_target_s'])
                entry['grid_best'] = best
                print('  grid best: %d groups, momentum %.1f, rate %g: %.4g s'
                      % (best['groups'], best['momentum'], best['base_lr'],
                         best['time_to_target_s']), flush=True)
        if args.reuse_grid and name not in args.grid.split(','):
            with open(args.reuse_grid) as f:
                previous = json.load(f)['clusters'].get(name, {})
            for key in ('grid', 'grid_best'):
                if key in previous:
                    entry[key] = previous[key]
            if 'grid_best' in entry:
                best = entry['grid_best']
                print('  grid best (from %s): %d groups, momentum %.1f, rate %g: %.4g s'
                      % (args.reuse_grid, best['groups'], best['momentum'], best['base_lr'],
                         best['time_to_target_s']), flush=True)
        if len(runs) > 1:
            entry['seeds'] = seed_table(runs, entry, param, path, spec, args)
        report['clusters'][name] = entry
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)


if __name__ == '__main__':
    main()
