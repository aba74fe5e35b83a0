"""Ctrl-C before cct's own signal handling starts ends the process quietly, as Caffe's tools end under
SIGINT's default disposition: killed by the signal (the shell shows status 130), with no traceback.

``cct train`` records SIGINT from before its net is built (Caffe's SignalHandler is made before the
solver), so this covers start-up (imports, flag parsing) and every other action throughout.
"""
import os
import signal
import sys


def die_of_sigint():
    """End the process as SIGINT's default disposition would (no traceback, no cleanup handlers)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    if os.name == 'posix':
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(130)   # where a signal cannot end the process, the status a shell would show


class QuietInterrupt:
    """``sys.excepthook`` while cct's modules load: an uncaught KeyboardInterrupt dies of SIGINT
    without a traceback; other exceptions go to the previous hook. ``remove`` puts that one back, so
    a script importing cct keeps Python's own handling once the import is done."""

    def __init__(self):
        self.previous = sys.excepthook
        sys.excepthook = self

    def __call__(self, kind, value, traceback):
        if issubclass(kind, KeyboardInterrupt):
            die_of_sigint()
        self.previous(kind, value, traceback)

    def remove(self):
        if sys.excepthook is self:
            sys.excepthook = self.previous
