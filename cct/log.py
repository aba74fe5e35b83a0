"""glog-style logging, so cct's lines read like Caffe's (``I1124 08:46:00.123456 12345 net.py:98] ...``).

Caffe's tools (parse_log.py, parse_log.sh, extract_seconds.py) read the text after the ``] `` and the
date/time tokens of the prefix, so the prefix keeps glog's layout: level letter, mmdd, time with
microseconds, thread id, file:line.
"""
import logging
import os
import sys
import threading

logger = logging.getLogger('cct')
logger.addHandler(logging.NullHandler())

_LEVEL_LETTERS = {logging.DEBUG: 'I', logging.INFO: 'I', logging.WARNING: 'W',
                  logging.ERROR: 'E', logging.CRITICAL: 'F'}


class GlogFormatter(logging.Formatter):
    """Formats a record with glog's prefix: ``Lmmdd hh:mm:ss.uuuuuu tid file:line] message``."""

    def format(self, record):
        t = self.converter(record.created)
        usec = int((record.created - int(record.created)) * 1e6)
        tid = threading.get_native_id() if record.thread == threading.main_thread().ident \
            else record.thread % 100000
        prefix = '%s%02d%02d %02d:%02d:%02d.%06d %5d %s:%d] ' % (
            _LEVEL_LETTERS.get(record.levelno, 'I'), t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min,
            t.tm_sec, usec, tid, os.path.basename(record.pathname), record.lineno)
        return prefix + record.getMessage()


_handler = None


def init_log(level=logging.INFO, stream=None):
    """Send cct's log to ``stream`` (stderr by default) in glog format, like Caffe's tools do.

    Args:
        level: the lowest level printed; an int (0 = INFO as in glog's minloglevel, 1 = WARNING,
            2 = ERROR) or a ``logging`` level.
        stream: a file object; stderr when None.
    """
    global _handler
    if isinstance(level, int) and level in (0, 1, 2, 3):
        level = (logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)[level]
    if _handler is not None:
        logger.removeHandler(_handler)
    _handler = logging.StreamHandler(stream or sys.stderr)
    _handler.setFormatter(GlogFormatter())
    logger.addHandler(_handler)
    logger.setLevel(level)
    logger.propagate = False
