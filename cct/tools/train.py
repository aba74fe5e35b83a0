"""Train or fine-tune a model (Caffe's ``caffe train``): ``cct train --solver S [--weights W | --snapshot S]``.

The solver file may also be given as the only positional argument. ``--weights`` (a comma list of
.caffemodel/.caffemodel.h5) fine-tunes and replaces the solver file's own ``weights:`` entries;
``--snapshot`` resumes from a .solverstate(.h5) and ignores them; giving both is an error. Ctrl-C
(SIGINT) and SIGHUP stop, snapshot or do nothing as ``--sigint_effect``/``--sighup_effect`` say.
On an interactive terminal (and with tqdm installed) a progress bar sits under the log; every log
line still prints whole, above it. Piped or redirected, the log is exactly Caffe's.

``--groups G [--group-size K] [--ray-address ADDR] [--worker-cpus C]`` trains with Omnivore's
compute groups on Ray (cct.distributed): G groups of K workers, synchronous inside a group,
asynchronous across groups, against one parameter server that writes this same log.
``--momentum-mode auto`` sets the server's momentum to the solver file's minus 1 - 1/G (the
momentum asynchrony adds; cct.distributed.momentum) and logs the value used.

``--devices cpu,opencl:0 [--split auto|F1,F2]`` splits each batch of the train net across those
devices (cct.parallel): a replica of the net on each, the gradients summed, one update applied;
the test nets run on the first device.
"""
import contextlib
import sys

from cct import io as cct_io
from cct.errors import CctError, install_hint
from cct.log import init_log, logger
from cct.solver import solver_class
from cct.solver.signals import SignalHandler, signal_effect
from cct.tools.common import (add_devices_flags, add_gpu_flag, add_net_state_flags,
                              hybrid_devices, stages_from_flag, use_device)


def add_arguments(parser):
    parser.add_argument('solver_file', nargs='?', default='',
                        help='The solver definition protocol buffer text file (same as --solver)')
    parser.add_flag('solver', default='', help='The solver definition protocol buffer text file.')
    parser.add_flag('weights', default='',
                    help="Optional; the pretrained weights to initialize finetuning, separated by "
                         "','. Cannot be set simultaneously with snapshot.")
    parser.add_flag('snapshot', default='',
                    help='Optional; the snapshot solver state to resume training.')
    add_net_state_flags(parser)
    add_gpu_flag(parser)
    add_devices_flags(parser)
    parser.add_flag('sigint_effect', default='stop',
                    help='Optional; action to take when a SIGINT signal is received: snapshot, '
                         'stop or none.')
    groups = parser.add_argument_group('compute groups (Omnivore, on Ray; %s)'
                                       % install_hint('distributed', 'ray>=2.59'))
    groups.add_argument('-groups', '--groups', type=int, default=0,
                        help='Train with this many compute groups on Ray (asynchronous with each '
                             'other); 0 (default) trains in this process as Caffe does.')
    groups.add_argument('--group-size', '--group_size', '-group_size', dest='group_size',
                        type=int, default=1,
                        help='Workers per compute group; each reads its own shard of the data '
                             'and runs the prototxt batch (default 1).')
    groups.add_argument('--ray-address', '--ray_address', '-ray_address', dest='ray_address',
                        default='',
                        help='A Ray cluster to join; without it cct starts a local Ray.')
    groups.add_argument('--worker-cpus', '--worker_cpus', '-worker_cpus', dest='worker_cpus',
                        type=float, default=None,
                        help='CPUs each worker reserves in Ray (default 1, or an even share of '
                             "this machine's cores when there are more workers than cores).")
    groups.add_argument('--momentum-mode', '--momentum_mode', '-momentum_mode',
                        dest='momentum_mode', default='explicit', choices=('explicit', 'auto'),
                        help="auto: the server's explicit momentum is the solver file's minus "
                             'the 1 - 1/groups that asynchrony adds (may be negative).')
    parser.add_flag('sighup_effect', default='snapshot',
                    help='Optional; action to take when a SIGHUP signal is received: snapshot, '
                         'stop or none.')


def run(args):
    if args.solver and args.solver_file and args.solver != args.solver_file:
        raise CctError('two different solver files given: --solver %s and %s'
                       % (args.solver, args.solver_file))
    solver_path = args.solver or args.solver_file
    if not solver_path:
        raise CctError('Need a solver definition to train (cct train --solver solver.prototxt).')
    if args.snapshot and args.weights:
        raise CctError('Give a snapshot to resume training or weights to finetune but not both.')
    signal_effect(args.sigint_effect)
    signal_effect(args.sighup_effect)
    param = cct_io.read_solver_text(solver_path)
    param.train_state.level = args.level
    param.train_state.stage.extend(stages_from_flag(args.stage))
    devices = hybrid_devices(args)
    if devices is None:
        use_device(args.gpu, param)
    elif args.groups:
        raise CctError('--devices (a batch split across devices in this process) and --groups '
                       '(compute groups on Ray) cannot be combined')
    if args.snapshot:
        param.ClearField('weights')
    elif args.weights:
        param.ClearField('weights')
        param.weights.append(args.weights)
    if args.groups:
        return _run_grouped(args, param, solver_path)
    if args.group_size != 1 or args.ray_address or args.worker_cpus is not None or \
            args.momentum_mode != 'explicit':
        raise CctError('--group-size, --ray-address, --worker-cpus and --momentum-mode need '
                       '--groups')
    with SignalHandler(args.sigint_effect, args.sighup_effect) as signals:
        solver = solver_class(param.type, solver_path)(
            param, source=solver_path, devices=devices, split=args.split or 'auto')
        # No script runs between the steps, so no blob's diff is read after backward (with
        # --devices: the primary replica's).
        solver.net.share_diffs()
        solver.set_action_function(signals.check)
        if args.snapshot:
            logger.info('Resuming from %s', args.snapshot)
            solver.restore(args.snapshot)
        logger.info('Starting Optimization')
        with _progress_bar(solver):
            solver.solve()
    logger.info('Optimization Done.')


def _run_grouped(args, param, solver_path):
    from cct.distributed import GroupedTrainer
    from cct.distributed.momentum import set_momentum_mode
    solver_class(param.type, solver_path)  # an unknown solver type fails here, before Ray starts
    set_momentum_mode(param, args.groups, args.momentum_mode, solver_path)
    with SignalHandler(args.sigint_effect, args.sighup_effect) as signals:
        trainer = GroupedTrainer(param, args.groups, args.group_size,
                                 ray_address=args.ray_address or None,
                                 snapshot=args.snapshot or None, worker_cpus=args.worker_cpus,
                                 signals=signals, source=solver_path)
        if args.snapshot:
            logger.info('Resuming from %s', args.snapshot)
        logger.info('Starting Optimization')
        trainer.run()
    logger.info('Optimization Done.')


class _AboveTheBar:
    """A stream for the log handler that prints each line above the tqdm bar."""

    def __init__(self, tqdm):
        self.tqdm = tqdm

    def write(self, text):
        self.tqdm.write(text, end='', file=sys.stderr)

    def flush(self):
        sys.stderr.flush()


@contextlib.contextmanager
def _progress_bar(solver):
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is None or not sys.stderr.isatty():
        yield
        return
    bar = tqdm(total=solver.param.max_iter, initial=solver.iter, unit=' iter', leave=False,
               dynamic_ncols=True, file=sys.stderr)
    level = logger.level
    init_log(level, _AboveTheBar(tqdm))
    solver.add_callback(lambda: bar.update(solver.iter - bar.n), lambda: None)
    try:
        yield
        bar.update(solver.iter - bar.n)
    finally:
        bar.close()
        init_log(level)
