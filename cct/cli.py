"""The ``cct`` command line: Caffe's ``caffe <action> [flags]`` (tools/caffe.cpp) plus Caffe's other
tools as actions.

Flags take every spelling gflags accepts (``-solver x``, ``-solver=x``, ``--solver x``,
``--solver=x``), and glog's own flags are accepted. A user mistake ends in one line naming what is
wrong, never a traceback.
"""
import argparse
import importlib
import os
import re
import sys
import textwrap

from cct.errors import CctError
from cct.interrupt import QuietInterrupt, die_of_sigint
from cct.log import init_log, log_to_directory
from cct.tools import ACTIONS

# The command line's own modules load quietly too (see cct.interrupt); main takes over from here.
QuietInterrupt()


class CaffeArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose ``add_flag('solver', ...)`` also accepts gflags' single dash."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault('allow_abbrev', False)
        super().__init__(*args, **kwargs)
        glog = self.add_argument_group('logging flags (glog)')
        for name, kind in (('minloglevel', int), ('v', int), ('log_dir', str)):
            glog.add_argument('-' + name, '--' + name, type=kind, default=None,
                              help=argparse.SUPPRESS if name != 'minloglevel' else
                              '0 = INFO (default), 1 = WARNING, 2 = ERROR')
        for name in ('logtostderr', 'alsologtostderr'):
            glog.add_argument('-' + name, '--' + name, nargs='?', const='true', default=None,
                              help=argparse.SUPPRESS)

    def add_flag(self, name, **kwargs):
        """Add ``-name``/``--name``; the value lands in ``args.<name>``."""
        kwargs.setdefault('dest', name)
        return self.add_argument('-' + name, '--' + name, **kwargs)


_THREADS = '''Threads: the kernels run one OpenMP thread per core this process may use; OMP_NUM_THREADS=N
sets N (as in "OMP_NUM_THREADS=4 cct train ..."). Each data layer adds one prefetching thread.'''


def plain(text):
    """Docstring text as a terminal shows it: RST's ``literal`` markup without its backticks."""
    return re.sub(r'``(.+?)``', r'\1', text, flags=re.S)


def summary(doc):
    """The first sentence of a docstring, on one line and without RST markup."""
    paragraph = ' '.join(plain((doc or '').strip()).split('\n\n')[0].split())
    match = re.match(r'(.+?[.!?])(\s|$)', paragraph)
    return match.group(1) if match else paragraph


def _module_name(action):
    """An action's module: ``simulate-async`` lives in cct/tools/simulate_async.py."""
    return 'cct.tools.' + action.replace('-', '_')


def _usage():
    from cct import __version__
    lines = []
    for name in ACTIONS:
        text = summary(importlib.import_module(_module_name(name)).__doc__)
        lines.append(textwrap.fill(text, 100, initial_indent='  %-20s ' % name,
                                   subsequent_indent=' ' * 23))
    return ('usage: cct <action> [flags]\n       cct --version    (this is cct %s)\n\n'
            'Available cct actions:\n%s\n\n`cct <action> --help` lists the flags of an action.\n\n'
            '%s' % (__version__, '\n'.join(lines), _THREADS))


def _start_log(args):
    """glog's flags, with glog's GLOG_* environment variables as their defaults: minloglevel, and
    log_dir (a log file besides stderr, unless logtostderr)."""
    level = args.minloglevel
    if level is None:
        value = os.environ.get('GLOG_minloglevel', '0')
        try:
            level = int(value)
        except ValueError:
            raise CctError('GLOG_minloglevel must be 0, 1, 2 or 3 (got %r)' % value) from None
    init_log(level)
    only_stderr = args.logtostderr if args.logtostderr is not None else \
        os.environ.get('GLOG_logtostderr', 'false')
    if only_stderr.lower() in ('true', 't', '1', 'yes', 'y'):
        return
    directory = args.log_dir or os.environ.get('GLOG_log_dir')
    if directory:
        try:
            log_to_directory(directory)
        except OSError as e:
            raise CctError('cannot write a log file in --log_dir %s: %s'
                           % (directory, e.strerror or e)) from None


def main(argv=None):
    """Entry point of the ``cct`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help', 'help'):
        print(_usage(), file=sys.stderr if not argv else sys.stdout)
        return 1 if not argv else 0
    if argv[0] in ('--version', '-version', 'version'):
        from cct import __version__
        print('cct version %s' % __version__)   # gflags' --version line, as `caffe --version`
        return 0
    action = argv[0]
    if action not in ACTIONS:
        print(_usage(), file=sys.stderr)
        print('Unknown action: %s' % action, file=sys.stderr)
        return 1
    try:
        module = importlib.import_module(_module_name(action))
        parser = CaffeArgumentParser(prog='cct ' + action,
                                     description=plain((module.__doc__ or '').strip()),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(parser)
        args = parser.parse_args(argv[1:])
        _start_log(args)
        status = module.run(args)
    except CctError as e:
        print('cct %s: error: %s' % (action, e), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Caffe's tools have SIGINT's default disposition outside training: the process ends,
        # killed by the signal, without a word.
        die_of_sigint()
    return 0 if status is None else int(status)


if __name__ == '__main__':
    sys.exit(main())
