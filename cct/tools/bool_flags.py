"""gflags-style boolean flags for argparse: ``--gray``, ``-gray``, ``--gray=false``, ``--nogray``.

A plain ``nargs='?'`` flag would swallow the positional argument after it (``--shuffle ROOT/``), so
each spelling with a value is registered as an option string of its own: argparse matches a whole
argument against the known option strings before it splits at ``=``.
"""
import argparse

_TRUE = ('true', 'True', 'TRUE', 't', '1', 'yes', 'y')
_FALSE = ('false', 'False', 'FALSE', 'f', '0', 'no', 'n')


def add_bool_flag(parser, name, help=None, default=False):
    """Add the boolean flag ``name`` to ``parser``; its value lands in ``args.<name>``."""
    parser.add_argument('-' + name, '--' + name, dest=name, action='store_true', default=default,
                        help=help)
    spellings = [(value, True) for value in _TRUE] + [(value, False) for value in _FALSE]
    for value, meaning in spellings:
        parser.add_argument('-%s=%s' % (name, value), '--%s=%s' % (name, value), dest=name,
                            action='store_true' if meaning else 'store_false',
                            help=argparse.SUPPRESS)
    parser.add_argument('-no' + name, '--no' + name, dest=name, action='store_false',
                        help=argparse.SUPPRESS)
