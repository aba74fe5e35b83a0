"""glog-style logging, so cct's lines read like Caffe's (``I1124 08:46:00.123456 12345 net.py:98] ...``).

Caffe's tools (parse_log.py, parse_log.sh, extract_seconds.py) read the text after the ``] `` and the
date/time tokens of the prefix, so the prefix keeps glog's layout: level letter, mmdd, time with
microseconds, thread id, file:line.
"""
import getpass
import logging
import os
import socket
import sys
import threading
import time

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


_file_handler = None


def log_to_directory(directory, program='cct'):
    """Also write the log to a file in ``directory``, as glog's ``--log_dir`` does.

    The file is ``<program>.<host>.<user>.log.INFO.<yyyymmdd-hhmmss>.<pid>`` and starts with
    glog's three header lines; the symlink ``<program>.INFO`` points at the newest one, so
    ``parse_log.py log_dir/cct.INFO`` works as it does on Caffe's ``caffe.INFO``.

    Returns:
        The log file's path.

    Raises:
        OSError: ``directory`` is missing or not writable.
    """
    global _file_handler
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = 'invalid-user'
    now = time.time()
    host = socket.gethostname()
    name = '%s.%s.%s.log.INFO.%s.%d' % (program, host, user,
                                        time.strftime('%Y%m%d-%H%M%S', time.localtime(now)),
                                        os.getpid())
    path = os.path.join(directory, name)
    stream = open(path, 'a', buffering=1)
    stream.write('Log file created at: %s\nRunning on machine: %s\n'
                 'Log line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg\n'
                 % (time.strftime('%Y/%m/%d %H:%M:%S', time.localtime(now)), host))
    link = os.path.join(directory, program + '.INFO')
    try:
        if os.path.islink(link):
            os.remove(link)
        os.symlink(name, link)
    except OSError:
        pass  # as glog: the symlink is a convenience, the log file is what counts
    if _file_handler is not None:
        logger.removeHandler(_file_handler)
        _file_handler.close()
    _file_handler = logging.StreamHandler(stream)
    _file_handler.setFormatter(GlogFormatter())
    logger.addHandler(_file_handler)
    return path
