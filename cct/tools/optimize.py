"""Omnivore's optimizer: choose compute groups, momentum and learning rate for time to accuracy.

``cct optimize --solver S --cluster C.json --simulate --budget SECONDS [--target-accuracy A]
[--workdir D] [--json] [--plot out.png]`` runs Omnivore's cold start and steady-state epochs
(cct.distributed.optimizer) on the cluster simulator: every point is a simulated run with real
gradients, timed by the cluster description; ``--budget``, ``--phase-seconds`` and
``--epoch-seconds`` are simulated seconds.

``cct optimize --solver S [--ray-address ADDR] [--workers W] [--worker-cpus C] --budget SECONDS
...`` (no ``--simulate``) runs every point as real compute groups on Ray (cct.distributed.groups):
G groups of W // G workers (W: by default one per CPU of the Ray cluster, over --worker-cpus),
joining the Ray at ADDR (or $RAY_ADDRESS) or starting a local one of cct's own, as ``cct train
--groups`` does; the times are wall-clock seconds of training (each point's actor start-up is
logged apart).

Each decision is logged with its evidence; every measurement goes to
``<workdir>/measurements.jsonl`` and a restarted optimizer reuses them (and the checkpoints beside
them). The report is a table of HE, SE and time to target per configuration tried and the chosen
one; ``--json`` prints the chosen configuration (``groups``, ``momentum``, ``base_lr``,
``seconds_per_iteration``, ``iterations_to_target``, ``time_to_target_s`` - the optimizer's own
time to the target, its search included) plus ``tried`` (the same keys per point) and
``decisions``.
"""
import json
import os

from cct import io as cct_io
from cct.errors import CctError
from cct.distributed.optimizer import Optimizer
from cct.distributed.simulator import SimulatedEvaluator, TRIAL_ROUNDS, TRIAL_UPDATES
from cct.distributed import reports
from cct.tools.simulate import add_simulation_flags, read_inputs


def add_arguments(parser):
    add_simulation_flags(parser, groups=False)
    parser.add_flag('simulate', action='store_true',
                    help='Measure on the cluster simulator (--cluster) instead of on Ray.')
    parser.add_argument('--ray-address', '--ray_address', dest='ray_address', default='',
                        help='Measure on the Ray cluster at this address (default: '
                             '$RAY_ADDRESS, else a local Ray of cct\'s own).')
    parser.add_flag('workers', type=int, default=None,
                    help='On Ray: the workers the groups share (default: the cluster\'s CPUs '
                         'over --worker-cpus).')
    parser.add_argument('--worker-cpus', '--worker_cpus', dest='worker_cpus', type=float,
                        default=None, help='On Ray: CPUs each worker reserves (default 1).')
    parser.add_flag('budget', type=float, default=None,
                    help="The optimizer's total seconds (simulated, or on Ray the wall clock's "
                         'training seconds), search and training.')
    parser.add_argument('--phase-seconds', '--phase_seconds', dest='phase_seconds', type=float,
                        default=None, help='Seconds per trial (default: budget / 50).')
    parser.add_argument('--epoch-seconds', '--epoch_seconds', dest='epoch_seconds', type=float,
                        default=None, help='Seconds per training epoch (default: budget / 5).')
    parser.add_argument('--trial-updates', '--trial_updates', dest='trial_updates', type=int,
                        default=TRIAL_UPDATES,
                        help='Updates on a model it updated itself that a trial runs at least '
                             '(default %d).' % TRIAL_UPDATES)
    parser.add_argument('--trial-rounds', '--trial_rounds', dest='trial_rounds', type=int,
                        default=TRIAL_ROUNDS,
                        help='...and at least this many per group (default %d).' % TRIAL_ROUNDS)
    parser.add_argument('--negative-momentum', '--negative_momentum', dest='negative_momentum',
                        action='store_true', help='Also try momentum -0.3 in the steady state.')
    parser.add_flag('workdir', default='',
                    help='Measurements and checkpoints (default: cct_optimize_<cluster name>, '
                         'or cct_optimize_ray).')


def run(args):
    if args.budget is None or args.budget <= 0:
        raise CctError('give --budget SECONDS (positive)')
    if args.simulate and (args.ray_address or args.workers or args.worker_cpus):
        raise CctError('--simulate measures on the cluster simulator; --ray-address, --workers '
                       'and --worker-cpus are for measuring on Ray (without --simulate)')
    if args.simulate:
        param, cluster = read_inputs(args)
        workdir = args.workdir or 'cct_optimize_%s' % cluster.name
        evaluator = SimulatedEvaluator(param, args.solver, cluster, workdir,
                                       args.target_accuracy, args.seed, args.trial_updates,
                                       args.trial_rounds)
        return _optimize(args, evaluator, cluster.group_counts(), workdir)
    if not args.solver:
        raise CctError('give --solver')
    if args.cluster:
        raise CctError('--cluster describes a simulated cluster: give --simulate, or leave it '
                       'out to measure on Ray')
    from cct.distributed import cluster as ray_cluster
    from cct.distributed.ray_evaluator import RayEvaluator
    param = cct_io.read_solver_text(args.solver)
    workdir = args.workdir or 'cct_optimize_ray'
    with ray_cluster.connected(args.ray_address or None):
        ray = ray_cluster.import_ray()
        workers = args.workers or int(ray.cluster_resources().get('CPU', 0) //
                                      (args.worker_cpus or 1))
        evaluator = RayEvaluator(param, args.solver, workers, workdir, args.target_accuracy,
                                 args.trial_updates, args.worker_cpus,
                                 trial_rounds=args.trial_rounds)
        return _optimize(args, evaluator, evaluator.group_counts(), workdir)


def _optimize(args, evaluator, group_counts, workdir):
    optimizer = Optimizer(evaluator, group_counts, budget_seconds=args.budget,
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
