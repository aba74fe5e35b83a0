"""Simulate compute-group training on a described cluster: real gradients, simulated clock.

``cct simulate --solver S --cluster C.json --groups G [--momentum M] [--base-lr R]
[--momentum-mode auto] [--target-accuracy A] [--json] [--plot out.png]`` runs G compute groups in
this process as a discrete-event simulation (cct.distributed.simulator): each group's time comes
from the cluster description (examples/clusters/*.json, documented in the README), every gradient
is computed by cct on the model the group read, and the parameter server is the one ``cct train
--groups`` runs. Prints the server's Caffe log, then a table of hardware efficiency (simulated
seconds per iteration), statistical efficiency (iterations to the target accuracy), time to target
and the staleness histogram; ``--json`` prints one JSON object on the last line instead.
"""
import json

from cct import io as cct_io
from cct.errors import CctError
from cct.distributed.cluster_spec import load_cluster
from cct.distributed.simulator import Simulation, quiet
from cct.distributed import reports


def add_simulation_flags(parser, groups=True):
    parser.add_flag('solver', default='', help='The solver definition protocol buffer text file.')
    parser.add_flag('cluster', default='', help='The cluster description (JSON).')
    if groups:
        parser.add_flag('groups', type=int, default=1, help='Compute groups (default 1).')
        parser.add_flag('momentum', type=float, default=None,
                        help="Explicit momentum (default: the solver file's).")
        parser.add_argument('--base-lr', '--base_lr', '-base_lr', dest='base_lr', type=float,
                            default=None, help="Learning rate (default: the solver file's).")
        parser.add_argument('--momentum-mode', '--momentum_mode', '-momentum_mode',
                            dest='momentum_mode', default='explicit', choices=('explicit', 'auto'),
                            help='auto: explicit momentum = momentum - (1 - 1/groups), which may '
                                 'be negative (asynchrony adds 1 - 1/groups).')
    parser.add_argument('--target-accuracy', '--target_accuracy', '-target_accuracy',
                        dest='target_accuracy', type=float, default=None,
                        help='Test accuracy whose first reaching ends the run (time to target).')
    parser.add_flag('seed', type=int, default=0, help='Seed of the compute-time jitter.')
    parser.add_flag('json', action='store_true', help='Print JSON instead of a table.')
    parser.add_flag('plot', default='', help='Also draw the results into this image file.')


def read_inputs(args):
    if not args.solver or not args.cluster:
        raise CctError('give --solver and --cluster')
    return cct_io.read_solver_text(args.solver), load_cluster(args.cluster)


def add_arguments(parser):
    add_simulation_flags(parser)
    parser.add_argument('--max-seconds', '--max_seconds', dest='max_seconds', type=float,
                        default=None, help='Stop after this many simulated seconds.')
    parser.add_argument('--keep-going', '--keep_going', dest='keep_going', action='store_true',
                        help="Train to the solver's max_iter even after reaching the target.")


def run(args):
    param, cluster = read_inputs(args)
    with quiet(args.json):
        simulation = Simulation(param, args.solver, cluster, args.groups, momentum=args.momentum,
                                base_lr=args.base_lr, momentum_mode=args.momentum_mode,
                                seed=args.seed)
        result = simulation.run(max_seconds=args.max_seconds,
                                target_accuracy=args.target_accuracy,
                                stop_at_target=not args.keep_going)
    if args.plot:
        reports.plot_simulation(result, args.plot)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print('\n'.join(reports.simulation_table(result)))
