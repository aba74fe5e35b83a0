"""Tables and plots of the simulator, the momentum measurement and the optimizer (``cct simulate``,
``cct simulate-async``, ``cct optimize``). Figures are drawn without pyplot, as ``cct plot`` does
(the ``plot`` extra)."""
from cct.errors import MissingPackageError, install_hint


def _figure(width, height):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingPackageError('--plot needs matplotlib, which is not installed: %s'
                                  % install_hint('plot', 'matplotlib>=3.5')) from None
    return Figure(figsize=(width, height), dpi=100)


def _value(value, spec='%.4g'):
    return '-' if value is None else spec % value


def simulation_table(result):
    """Lines: HE, SE, time to target and the staleness histogram of one simulated run."""
    lines = ['%-24s %s' % ('groups', result.groups),
             '%-24s %g' % ('explicit momentum', result.momentum),
             '%-24s %g' % ('base_lr', result.base_lr),
             '%-24s %s' % ('seconds per iteration', _value(result.seconds_per_iteration)),
             '%-24s %s' % ('iterations to target', _value(result.iterations_to_target, '%d')),
             '%-24s %s' % ('time to target (s)', _value(result.time_to_target_s)),
             '%-24s %d in %.4g simulated s%s' % (
                 'updates', result.iterations - result.start_iteration, result.seconds,
                 ' (diverged)' if result.diverged else '')]
    histogram = ', '.join('%d: %d' % kv for kv in sorted(result.staleness.items()))
    lines.append('%-24s %s' % ('staleness histogram', histogram or '-'))
    for iteration, seconds, accuracy, loss in result.tests:
        lines.append('test at iteration %-6d %9.4g s  accuracy %s  loss %.4g'
                     % (iteration, seconds, _value(accuracy), loss))
    return lines


def plot_simulation(result, path):
    """Loss and accuracy against simulated seconds and against iterations, and the staleness
    histogram."""
    figure = _figure(11, 7)
    axes = figure.subplots(2, 2)
    iterations = [i for i, _, _ in result.losses]
    seconds = [s for _, s, _ in result.losses]
    losses = [loss for _, _, loss in result.losses]
    tests = [t for t in result.tests if t[2] is not None]
    for column, (xs, test_xs, label) in enumerate((
            (seconds, [t[1] for t in tests], 'simulated seconds'),
            (iterations, [t[0] for t in tests], 'iterations'))):
        axis = axes[0][column]
        axis.plot(xs, losses, lw=0.8, label='train loss')
        axis.set_xlabel(label)
        axis.set_ylabel('loss')
        if tests:
            twin = axis.twinx()
            twin.plot(test_xs, [t[2] for t in tests], 'r.-', label='test accuracy')
            twin.set_ylabel('test accuracy')
    staleness = sorted(result.staleness.items())
    axes[1][0].bar([k for k, _ in staleness], [v for _, v in staleness])
    axes[1][0].set_xlabel('staleness (updates missed)')
    axes[1][0].set_ylabel('updates')
    axes[1][1].axis('off')
    axes[1][1].text(0, 1, '\n'.join(simulation_table(result)[:7]), va='top', family='monospace',
                    fontsize=8)
    figure.suptitle('%d groups, momentum %g, base_lr %g' % (result.groups, result.momentum,
                                                           result.base_lr))
    figure.tight_layout()
    figure.savefig(path)


def momentum_table(rows):
    lines = ['%-8s %-12s %10s %10s' % ('workers', 'problem', 'measured', '1 - 1/M')]
    lines += ['%-8d %-12s %10.4f %10.4f' % (r['workers'], r['problem'], r['measured_momentum'],
                                            r['predicted_momentum']) for r in rows]
    return lines


def plot_momentum(rows, path):
    figure = _figure(6, 4.5)
    axis = figure.subplots()
    for problem in sorted({r['problem'] for r in rows}):
        mine = [r for r in rows if r['problem'] == problem]
        axis.plot([r['workers'] for r in mine], [r['measured_momentum'] for r in mine], 'o-',
                  label='measured (%s)' % problem)
    workers = sorted({r['workers'] for r in rows})
    axis.plot(workers, [1 - 1 / m for m in workers], 'k--', label='1 - 1/M')
    axis.set_xscale('log', base=2)
    axis.set_xlabel('asynchronous workers M')
    axis.set_ylabel('implicit momentum')
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)


def optimizer_table(report):
    lines = ['%-7s %-7s %-8s %-9s %-12s %-10s %-9s %s' % (
        'phase', 'groups', 'momentum', 'base_lr', 's/iter (HE)', 'score', 'SE iters',
        'time to target')]
    for p in report['tried']:
        lines.append('%-7s %-7d %-8g %-9g %-12s %-10s %-9s %s' % (
            p['phase'], p['groups'], p['momentum'], p['base_lr'],
            _value(p['seconds_per_iteration']), 'diverged' if p['diverged'] else
            _value(p['score']), _value(p['iterations_to_target'], '%d'),
            _value(p['time_to_target_s'])))
    lines.append('chosen: %s groups, momentum %s, base_lr %s; time to target %s s (search '
                 'included), %s s spent' % (report['groups'], report['momentum'],
                                            report['base_lr'], _value(report['time_to_target_s']),
                                            _value(report['optimizer_seconds'])))
    return lines


def plot_optimizer(report, path):
    """HE against groups, and score of every point tried (the chosen one marked)."""
    figure = _figure(10, 4.5)
    left, right = figure.subplots(1, 2)
    points = [p for p in report['tried'] if p['seconds_per_iteration']]
    he = {}
    for p in points:
        he.setdefault(p['groups'], p['seconds_per_iteration'])
    left.plot(sorted(he), [he[g] for g in sorted(he)], 'o-')
    left.set_xscale('log', base=2)
    left.set_xlabel('compute groups')
    left.set_ylabel('simulated seconds per iteration (HE)')
    scored = [(i, p) for i, p in enumerate(report['tried']) if not p['diverged']]
    right.scatter([i for i, _ in scored], [p['score'] for _, p in scored],
                  c=[p['groups'] for _, p in scored], cmap='viridis')
    right.set_xlabel('run (in the order tried)')
    right.set_ylabel('score (mean loss at the end of the run)')
    right.set_yscale('log')
    right.set_title('chosen: %s groups, momentum %s, lr %s' % (
        report['groups'], report['momentum'], report['base_lr']), fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
