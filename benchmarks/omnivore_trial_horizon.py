"""Do the optimizer's short trials rank configurations as their time to the target does?

From one checkpoint (a state an optimizer run trained to, e.g. the one its steady state started
from: its decision log names it), each configuration runs as a trial of each length and is scored
as the optimizer scores it (cct.distributed.simulator.trial_score), then runs on to the target
accuracy; simulated clock, real gradients, one jitter seed for all (common random numbers).
With --test, each trial's end state is also scored on the test net (accuracy and loss over its
test_iter batches), the target's own measure.

    git checkout 9ba34db     # the optimizer with the buffer alone made the README's state
    python benchmarks/omnivore_simulation.py --digits /tmp/digits --clusters omnivore_cpu \\
        --reuse-grid benchmarks/results/omnivore_simulation.json --seeds 2 --workdir /tmp/omni
    git checkout main
    python benchmarks/omnivore_trial_horizon.py --digits /tmp/digits \\
        --checkpoint /tmp/omni/omnivore_cpu/seed2/g32_..._iter_129.solverstate
"""
import argparse
import os
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
sys.path.insert(0, ROOT)

import cct  # noqa: E402
from cct import io as cct_io  # noqa: E402
from cct.errors import CctError  # noqa: E402
from cct.log import init_log  # noqa: E402
from cct.distributed.cluster_spec import load_cluster  # noqa: E402
from cct.distributed.simulator import SimulatedEvaluator  # noqa: E402
from omnivore_simulation import solver_file  # noqa: E402

CONFIGS = '16/0.3/0.01,8/0.6/0.01,8/0.3/0.01,16/0/0.01,32/0/0.01,32/0.6/0.001,4/0.6/0.01'


def _configs(text):
    try:
        return [(int(g), float(m), float(r))
                for g, m, r in (part.split('/') for part in text.split(','))]
    except ValueError:
        raise argparse.ArgumentTypeError('not a list of GROUPS/MOMENTUM/RATE: %r' % text) \
            from None


def scored_on_test_net(param, snapshot):
    """The test net's mean accuracy and loss over test_iter batches with a trial's weights."""
    net = cct.Net(param.net, snapshot[:-len('.solverstate')] + '.caffemodel', cct.TEST)
    runs = [net.forward() for _ in range(param.test_iter[0])]
    return tuple(float(np.mean([float(r[k]) for r in runs])) for k in ('accuracy', 'loss'))


def _cell(record, test):
    if record['diverged']:
        return '%-11s' % 'diverged'
    return '%-11.3f' % record['score'] + ('  %.3f/%.3f' % test if test else '')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--digits', required=True, help='create_digits.py --output folder')
    parser.add_argument('--checkpoint', required=True, help='a .solverstate to start from')
    parser.add_argument('--cluster', default='omnivore_cpu')
    parser.add_argument('--configs', type=_configs, default=_configs(CONFIGS),
                        help='GROUPS/MOMENTUM/RATE,... (default %s)' % CONFIGS)
    parser.add_argument('--trials', default='0.1,0.2',
                        help='trial lengths, simulated seconds (comma-separated)')
    parser.add_argument('--target', type=float, default=0.97)
    parser.add_argument('--max-seconds', type=float, default=3.0)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--test', action='store_true',
                        help="also the test net's accuracy and loss at each trial's end")
    parser.add_argument('--workdir', default='/tmp/cct_omnivore_trial_horizon')
    args = parser.parse_args(argv)
    if not os.path.exists(args.checkpoint):
        raise SystemExit('%s: no such checkpoint' % args.checkpoint)
    init_log(0)
    os.makedirs(args.workdir, exist_ok=True)
    path = solver_file(args.digits, args.workdir, 3000)
    param = cct_io.read_solver_text(path)
    spec = load_cluster(os.path.join(ROOT, 'examples/clusters', args.cluster + '.json'))
    trials = [float(t) for t in args.trials.split(',')]
    # A trial stops at its seconds (no target); the run to the target stops there.
    scoring = SimulatedEvaluator(param, path, spec, os.path.join(args.workdir, 'trials'), None,
                                 seed=args.seed)
    running = SimulatedEvaluator(param, path, spec, os.path.join(args.workdir, 'runs'),
                                 args.target, seed=args.seed)
    print('from %s, seed %d' % (os.path.basename(args.checkpoint), args.seed))
    print('%-18s %s  %s' % ('configuration', '  '.join(
        'score %-5g s' % t + ('  test acc/loss' if args.test else '') for t in trials),
        'to %g (s, updates)' % args.target))
    for groups, momentum, rate in args.configs:
        try:
            scores = [scoring.evaluate(groups, momentum, rate, t, args.checkpoint)
                      for t in trials]
            tests = [scored_on_test_net(param, s['snapshot']) if args.test and s['snapshot']
                     else None for s in scores]
            run = running.evaluate(groups, momentum, rate, args.max_seconds, args.checkpoint)
        except CctError as e:
            raise SystemExit('%s: %s' % (args.checkpoint, e))
        reached = 'not in %g s' % args.max_seconds if run['time_to_target_s'] is None else \
            '%.3f, %d' % (run['time_to_target_s'], run['iterations_to_target'])
        print('%-18s %s  %s%s' % ('%d/%g/%g' % (groups, momentum, rate), '  '.join(
            _cell(s, t) for s, t in zip(scores, tests)),
            reached, ' (diverged)' if run['diverged'] else ''), flush=True)


if __name__ == '__main__':
    main()
