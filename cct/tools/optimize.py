"""Omnivore's optimizer: choose compute groups, momentum and learning rate for time to accuracy.

``cct optimize --solver S --cluster C.json --simulate --budget SECONDS [--target-accuracy A]
[--workdir D] [--json] [--plot out.png]`` runs Omnivore's cold start and steady-state epochs
(cct.distributed.optimizer) on the cluster simulator: every point is a simulated run with real
gradients, timed by the cluster description; ``--budget``, ``--phase-seconds`` and
``--epoch-seconds`` are simulated seconds. Each decision is logged with its evidence; every
measurement goes to ``<workdir>/measurements.jsonl`` and a restarted optimizer reuses them (and
the checkpoints beside them). The report is a table of HE, SE and time to target per
configuration tried and the chosen one; ``--json`` prints the chosen configuration (``groups``,
``momentum``, ``base_lr``, ``seconds_per_iteration``, ``iterations_to_target``,
``time_to_target_s`` - the optimizer's own time to the target, its search included) plus
``tried`` (the same keys per point) and ``decisions``.
"""
import json
import os

from cct.errors import CctError
from cct.distributed.optimizer import Optimizer, SimulatedEvaluator
from cct.distributed import reports
from cct.tools.simulate import add_simulation_flags, read_inputs


def add_arguments(parser):
    add_simulation_flags(parser, groups=False)
    parser.add_flag('simulate', action='store_true',
                    help='Measure on the cluster simulator (the only mode so far).')
    parser.add_argument('--ray-address', '--ray_address', dest='ray_address', default='',
                        help='Measure on a Ray cluster (not implemented yet: use --simulate).')
    parser.add_flag('budget', type=float, default=None,
                    help="The optimizer's total (simulated) seconds, search and training.")
    parser.add_argument('--phase-seconds', '--phase_seconds', dest='phase_seconds', type=float,
                        default=None, help='Seconds per grid point (default: budget / 50).')
    parser.add_argument('--epoch-seconds', '--epoch_seconds', dest='epoch_seconds', type=float,
                        default=None, help='Seconds per training epoch (default: budget / 5).')
    parser.add_argument('--negative-momentum', '--negative_momentum', dest='negative_momentum',
                        action='store_true', help='Also try momentum -0.3 in the steady state.')
    parser.add_flag('workdir', default='',
                    help='Measurements and checkpoints (default: cct_optimize_<cluster name>).')


def run(args):
    if args.ray_address or not args.simulate:
        raise CctError('cct optimize measures on the cluster simulator only so far: give '
                       '--simulate (running its points on a Ray cluster is not implemented)')
    if args.budget is None or args.budget <= 0:
        raise CctError('give --budget SECONDS (positive)')
    param, cluster = read_inputs(args)
    workdir = args.workdir or 'cct_optimize_%s' % cluster.name
    evaluator = SimulatedEvaluator(param, args.solver, cluster, workdir, args.target_accuracy,
                                   args.seed)
    optimizer = Optimizer(evaluator, cluster.group_counts(), budget_seconds=args.budget,
                          phase_seconds=args.phase_seconds or args.budget / 50,
                          epoch_seconds=args.epoch_seconds or args.budget / 5,
                          measurements=os.path.join(workdir, 'measurements.jsonl'),
                          negative_momentum=args.negative_momentum)
    report = optimizer.run()
    if args.plot:
        reports.plot_optimizer(report, args.plot)
    if args.json:
        print(json.dumps(report))
    else:
        print('\n'.join(reports.optimizer_table(report)))
