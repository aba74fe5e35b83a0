"""Measure the implicit momentum of asynchronous SGD against the theory's 1 - 1/M.

``cct simulate-async --workers 1,2,4,8,16 [--solver S] [--json] [--plot out.png]`` runs plain
asynchronous SGD with M workers whose compute times are memoryless, many times from the same start,
and fits μ in E[w_{t+1} − w_t] = μ·E[w_t − w_{t−1}] − η·E[∇f(w_t)] (the estimator is described in
cct.distributed.momentum). Without ``--solver`` the problem is a quadratic (2000 vectorised runs);
with it, the solver's net in the cluster simulator (real gradients, plain SGD at the solver's rate
or ``--base-lr``, ``--runs`` runs). ``--json`` prints one object per line per M: ``workers``,
``problem``, ``measured_momentum``, ``predicted_momentum``.
"""
import json

from cct import io as cct_io
from cct.errors import CctError
from cct.distributed import momentum as _momentum
from cct.distributed import reports


def add_arguments(parser):
    parser.add_flag('workers', default='1,2,4,8,16', help='Comma list of worker counts M.')
    parser.add_flag('solver', default='',
                    help='Measure on this solver\'s net instead of the quadratic.')
    parser.add_flag('runs', type=int, default=None,
                    help='Runs averaged per M (default 2000 on the quadratic, 8 on a net).')
    parser.add_argument('--base-lr', '--base_lr', dest='base_lr', type=float, default=None,
                        help="The net's rate (default: the solver file's).")
    parser.add_flag('seed', type=int, default=0, help='Seed of the compute times.')
    parser.add_flag('json', action='store_true', help='Print JSON lines instead of a table.')
    parser.add_flag('plot', default='', help='Also draw measured against predicted here.')


def run(args):
    try:
        workers = [int(w) for w in args.workers.split(',')]
    except ValueError:
        raise CctError('--workers takes a comma list of integers (got %r)' % args.workers) \
            from None
    if any(w < 1 for w in workers):
        raise CctError('--workers must all be at least 1 (got %s)' % args.workers)
    param = cct_io.read_solver_text(args.solver) if args.solver else None
    rows = []
    for m in workers:
        if param is None:
            mu, _ = _momentum.measure_quadratic(m, runs=args.runs or 2000, seed=args.seed)
            problem = 'quadratic'
        else:
            mu, _, problem = _momentum.measure_net(param, args.solver, m, runs=args.runs or 8,
                                                   base_lr=args.base_lr, seed=args.seed)
        row = {'workers': m, 'problem': problem, 'measured_momentum': mu,
               'predicted_momentum': _momentum.implicit_momentum(m)}
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        print('\n'.join(reports.momentum_table(rows)))
    if args.plot:
        reports.plot_momentum(rows, args.plot)

