"""Reading and writing Caffe's protobuf files: text prototxt, binary .caffemodel/.solverstate/.binaryproto
(Caffe's util/io.cpp plus the upgrade-on-read of upgrade_proto.cpp).

Every failure is a ParseError naming the file, and for text the line and column.
"""
import os

from google.protobuf import message as _message
from google.protobuf import text_format

from cct.errors import ParseError
from cct.io.upgrade import upgrade_net, upgrade_solver
from cct.log import logger
from cct.proto import caffe_pb2


def _read_bytes(path, what):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except FileNotFoundError:
        raise ParseError('%s file not found: %s' % (what, path)) from None
    except IsADirectoryError:
        raise ParseError('%s path is a directory, not a file: %s' % (what, path)) from None
    except OSError as e:
        raise ParseError('cannot read %s file %s: %s' % (what, path, e.strerror)) from None


def parse_text(text, message, source='<string>'):
    """Parse prototxt ``text`` into ``message``; errors read ``source:line:column: reason``."""
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as e:
        line, column = e.GetLine(), e.GetColumn()
        reason = str(e)
        prefix = '%s:%s : ' % (line, column)
        if reason.startswith(prefix):
            reason = reason[len(prefix):]
        error = ParseError('%s: %s' % (source, reason) if line is None else
                           '%s:%d:%d: %s' % (source, line, column, reason))
        error.line, error.column = line or 0, column or 0
        raise error from None
    return message


def read_text(path, message_class, what=None):
    """Parse the prototxt file at ``path`` as ``message_class``."""
    data = _read_bytes(path, what or message_class.DESCRIPTOR.name)
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        raise ParseError('%s: not a text prototxt (byte %d is not UTF-8); binary files such as '
                         '.caffemodel are read with the weights options' % (path, e.start)) from None
    return parse_text(text, message_class(), path)


def parse_binary(data, message_class, source='<bytes>'):
    try:
        return message_class.FromString(data)
    except (_message.DecodeError, RuntimeError, ValueError) as e:
        raise ParseError('%s: not a valid binary %s (truncated or corrupt file?): %s'
                         % (source, message_class.DESCRIPTOR.name, e)) from None


def read_binary(path, message_class, what=None):
    """Parse the binary protobuf file at ``path`` (no size limit) as ``message_class``."""
    return parse_binary(_read_bytes(path, what or message_class.DESCRIPTOR.name), message_class, path)


def _atomic_write(path, data):
    # Written beside the target and renamed over it: a reader (or a process killed mid-write)
    # sees the old file or the new one, never a torn one. A failed write removes its temporary.
    tmp = '%s.tmp%d' % (path, os.getpid())
    mode = 'wb' if isinstance(data, bytes) else 'w'
    try:
        with open(tmp, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text(message, path):
    """Write ``message`` as prototxt; the file appears whole or not at all."""
    _atomic_write(path, text_format.MessageToString(message))


def write_binary(message, path):
    """Write ``message`` in binary wire format; the file appears whole or not at all."""
    _atomic_write(path, message.SerializeToString())


def write_bytes(data, path):
    """Write serialized protobuf ``data``; the file appears whole or not at all."""
    _atomic_write(path, bytes(data))


def is_text_path(path):
    return os.path.splitext(path)[1].lower() in ('.prototxt', '.pbtxt', '.txt', '.pt')


def read_net_text(path):
    """ReadNetParamsFromTextFileOrDie: parse then upgrade old formats."""
    net = read_text(path, caffe_pb2.NetParameter, 'net prototxt')
    upgrade_net(net, path)
    return net


def read_net_binary(path):
    """ReadNetParamsFromBinaryFileOrDie: parse a .caffemodel (any size) then upgrade old formats."""
    net = read_binary(path, caffe_pb2.NetParameter, 'caffemodel')
    upgrade_net(net, path)
    return net


def read_net(path):
    """A net from text or binary, chosen by extension (prototxt-like names are text)."""
    return read_net_text(path) if is_text_path(path) else read_net_binary(path)


def read_solver_text(path):
    """ReadSolverParamsFromTextFileOrDie: parse, upgrade ``solver_type``, default snapshot_prefix."""
    solver = read_text(path, caffe_pb2.SolverParameter, 'solver prototxt')
    upgrade_solver(solver, path)
    if not solver.HasField('snapshot_prefix'):
        solver.snapshot_prefix = os.path.splitext(path)[0]
        logger.info('snapshot_prefix was not specified and is set to %s', solver.snapshot_prefix)
    elif os.path.isdir(solver.snapshot_prefix):
        stem = os.path.splitext(os.path.basename(path))[0]
        solver.snapshot_prefix = os.path.join(solver.snapshot_prefix, stem)
        logger.info('snapshot_prefix was a directory and is replaced to %s', solver.snapshot_prefix)
    return solver
