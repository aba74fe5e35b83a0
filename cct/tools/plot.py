"""Plot a Caffe or cct training log: train loss, test loss and accuracy, and lr against iterations.

``cct plot LOG [OUT.png]``; the image can also be named with ``--out OUT.png``, and is LOG.png when
not named.

The log is read with ``cct parse_log``'s parser (Caffe's tools/extra/parse_log.py rules), so any log
that Caffe's parse_log.py reads works. Three panels share the iteration axis: every train net output;
the test net outputs (losses on the left axis, accuracies on the right); the learning rate from the
'Iteration N, lr = X' lines (log scale when it spans more than a factor of ten). The figure is
drawn without pyplot, so no display or backend setting is involved (matplotlib: cct's ``plot`` extra).
"""
import math
import os
import re

from cct.errors import DataError, MissingPackageError, install_hint
from cct.tools.common import output_path
from cct.tools.parse_log import parse_log

_FIXED_COLUMNS = ('NumIters', 'Seconds', 'LearningRate')
_LR_LINE = re.compile(r'Iteration (\d+), lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)')


def learning_rates(log_path):
    """(iterations, rates) from the solver's 'Iteration N, lr = X' lines. parse_log's rows lag
    them by one display interval (a row's rate is the last one printed before its outputs)."""
    iterations, rates = [], []
    with open(log_path, errors='replace') as f:
        for line in f:
            match = _LR_LINE.search(line)
            if match:
                iterations.append(int(match.group(1)))
                rates.append(float(match.group(2)))
    return iterations, rates


def _series(rows):
    """{output name: (iterations, values)} for every output column of ``rows``."""
    names = []
    for row in rows:
        names.extend(name for name in row if name not in _FIXED_COLUMNS and name not in names)
    return {name: ([row['NumIters'] for row in rows if name in row],
                   [row[name] for row in rows if name in row]) for name in names}


def _is_accuracy(name):
    return 'acc' in name.lower()


def plot_log(log_path, out_path, width=8.0, height=9.0, dpi=100):
    """Draw the curves of the training log ``log_path`` into the image ``out_path``.

    Args:
        log_path: a Caffe or cct training log (glog lines).
        out_path: the image to write; its extension picks the format (png, svg, pdf, ...).
        width, height, dpi: the figure size in inches and its resolution, so a PNG is
            ``width * dpi`` x ``height * dpi`` pixels.

    Returns:
        (train_rows, test_rows) as parsed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingPackageError('cct plot needs matplotlib, which is not installed: '
                                  + install_hint('plot', 'matplotlib>=3.5')) from None
    train_rows, test_rows = parse_log(log_path)
    if not train_rows and not test_rows:
        raise DataError('%s: no train or test net output lines found, nothing to plot' % log_path)
    figure = Figure(figsize=(width, height), dpi=dpi)
    train_axes, test_axes, lr_axes = figure.subplots(3, 1, sharex=True)
    figure.suptitle(os.path.basename(log_path))

    for name, (iterations, values) in _series(train_rows).items():
        train_axes.plot(iterations, values, label=name)
    train_axes.set_ylabel('train output')
    _legend_or_note(train_axes, 'no train net output in the log')

    test_series = _series(test_rows)
    accuracy_axes = None
    for name, (iterations, values) in test_series.items():
        if _is_accuracy(name):
            accuracy_axes = accuracy_axes or test_axes.twinx()
            accuracy_axes.plot(iterations, values, marker='o', color='tab:green', label=name)
        else:
            test_axes.plot(iterations, values, marker='o', color='tab:red', label=name)
    test_axes.set_ylabel('test loss')
    if accuracy_axes is not None:
        accuracy_axes.set_ylabel('test accuracy')
        lines = test_axes.get_lines() + accuracy_axes.get_lines()
        test_axes.legend(lines, [line.get_label() for line in lines], loc='center right')
    else:
        _legend_or_note(test_axes, 'no test net output in the log')

    lr_iterations, rates = learning_rates(log_path)
    if not rates:
        lr_rows = [row for row in train_rows or test_rows if not math.isnan(row['LearningRate'])]
        lr_iterations = [row['NumIters'] for row in lr_rows]
        rates = [row['LearningRate'] for row in lr_rows]
    lr_axes.plot(lr_iterations, rates, color='tab:purple')
    if rates and min(rates) > 0 and max(rates) / min(rates) > 10:
        lr_axes.set_yscale('log')
    lr_axes.set_ylabel('learning rate')
    lr_axes.set_xlabel('iterations')
    if not rates:
        _legend_or_note(lr_axes, "no 'lr = ' lines in the log")
    for axes in (train_axes, test_axes, lr_axes):
        axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(out_path)
    return train_rows, test_rows


def _legend_or_note(axes, note):
    if axes.get_lines():
        axes.legend(loc='best')
    else:
        axes.text(0.5, 0.5, note, ha='center', va='center', transform=axes.transAxes)


def add_arguments(parser):
    parser.add_argument('log', help='training log (Caffe or cct glog output)')
    parser.add_argument('output_image_file', nargs='?', default=None,
                        help='image to write (or give it as --out; default: the log path with '
                             '.png appended)')
    parser.add_flag('out', default=None, help='image to write (instead of the second argument)')
    parser.add_flag('width', type=float, default=8.0, help='figure width in inches (default 8)')
    parser.add_flag('height', type=float, default=9.0, help='figure height in inches (default 9)')
    parser.add_flag('dpi', type=float, default=100.0, help='pixels per inch (default 100)')


def run(args):
    if not os.path.isfile(args.log):
        raise DataError('log file not found: %s' % args.log)
    out = output_path(args.output_image_file, args.out, args.log + '.png')
    train_rows, test_rows = plot_log(args.log, out, args.width, args.height, args.dpi)
    print('Plotted %d train and %d test rows of %s to %s'
          % (len(train_rows), len(test_rows), args.log, out))
