"""The actions of the ``cct`` command, one module each in this package (``cct/tools/<action>.py``).

Each module defines ``add_arguments(parser)`` and ``run(args)`` (returning the exit status, or None for
0); its docstring's first sentence is the action's summary in ``cct --help``. Add an action by adding
its module and one entry here (a ``-`` in an action's name is ``_`` in its module's).
"""

ACTIONS = [
    'draw', 'plot', 'parse_log',
    'train', 'test', 'time', 'device_query',
    'convert_mnist', 'convert_imageset', 'compute_image_mean', 'convert_cifar',
    'info', 'upgrade', 'export',
    'simulate', 'simulate-async', 'optimize',
]
