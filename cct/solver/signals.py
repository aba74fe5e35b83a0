"""SIGINT/SIGHUP turned into solver requests (Caffe's util/signal_handler.cpp): the handler only
records the signal; the solver polls ``check()`` after every iteration and test batch and then
stops, snapshots or carries on, as ``--sigint_effect``/``--sighup_effect`` say.
"""
import signal

from cct.errors import SolverError
from cct.solver.solver import SolverAction

EFFECTS = {'stop': SolverAction.STOP, 'snapshot': SolverAction.SNAPSHOT,
           'none': SolverAction.NONE}


def signal_effect(name):
    """The SolverAction for a flag value (stop, snapshot or none)."""
    try:
        return EFFECTS[name]
    except KeyError:
        raise SolverError('Invalid signal effect "%s" was specified (use stop, snapshot or none)'
                          % name) from None


class SignalHandler:
    """A context manager installing the handlers; ``check`` is the solver's action function."""

    def __init__(self, sigint_effect='stop', sighup_effect='snapshot'):
        self.effects = {signal.SIGINT: signal_effect(sigint_effect)}
        if hasattr(signal, 'SIGHUP'):
            self.effects[signal.SIGHUP] = signal_effect(sighup_effect)
        self.pending = []
        self.previous = {}

    def _record(self, signum, frame):
        self.pending.append(signum)

    def __enter__(self):
        for signum in self.effects:
            self.previous[signum] = signal.signal(signum, self._record)
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False

    def check(self):
        """The action the oldest pending signal asks for (SIGINT first, as Caffe checks it first)."""
        for signum in self.effects:
            if signum in self.pending:
                self.pending.remove(signum)
                return self.effects[signum]
        return SolverAction.NONE
