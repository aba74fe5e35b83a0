"""Upgrade an old net or solver file to the current format (Caffe's upgrade_net_proto_text,
upgrade_net_proto_binary and upgrade_solver_proto_text in one): ``cct upgrade IN OUT``.

IN is a net (prototxt, or a binary .caffemodel) or a solver prototxt; which one is found out by
parsing. The upgrades are Caffe's (V0 and V1 layers, data-transformation fields, input fields, old
BatchNorm ParamSpecs; solver_type). OUT's extension picks the format written: .caffemodel,
.binaryproto, .pb and .bin give binary, anything else text. A file already in the latest format is
written unchanged (with Caffe's "File already in latest proto format" message). Like Caffe's tools,
the exit status is 1 when an upgrade had problems (they are logged; the file is still written).
"""
import os

from cct import io as cct_io
from cct.errors import ParseError
from cct.io.protofiles import is_text_path, parse_binary, parse_text
from cct.io.upgrade import net_needs_upgrade, solver_needs_upgrade
from cct.log import logger
from cct.proto import caffe_pb2

BINARY_EXTENSIONS = ('.caffemodel', '.binaryproto', '.pb', '.bin', '.solverstate')


def add_arguments(parser):
    parser.add_argument('input_file', help='The old net (prototxt or caffemodel) or solver prototxt')
    parser.add_argument('output_file', help='Where to write the upgraded file; binary for '
                                            '.caffemodel/.binaryproto/.pb/.bin, text otherwise')


def _is_binary_path(path):
    return os.path.splitext(path)[1].lower() in BINARY_EXTENSIONS


def read_any(path):
    """The file parsed as a NetParameter or, failing that, a SolverParameter.

    Text is tried first unless the extension says binary; binary (a .caffemodel) is tried when the
    extension is not a text one and the text does not parse.
    """
    with open(path, 'rb') as f:
        data = f.read()
    text_errors = []
    if not _is_binary_path(path):
        try:
            text = data.decode('utf-8')
        except UnicodeDecodeError:
            text = None
        for message_class in (caffe_pb2.NetParameter, caffe_pb2.SolverParameter):
            if text is None:
                break
            try:
                return parse_text(text, message_class(), path)
            except ParseError as e:
                text_errors.append(e)
    if text_errors and is_text_path(path):
        raise _text_error(*text_errors)
    try:
        return parse_binary(data, caffe_pb2.NetParameter, path)
    except ParseError:
        if text_errors:
            raise _text_error(*text_errors) from None
        raise


def _text_error(net_error, solver_error):
    """Report the kind that parsed further: a solver file fails as a net at its first line."""
    if (solver_error.line, solver_error.column) > (net_error.line, net_error.column):
        return ParseError('Failed to parse input text file as SolverParameter: %s' % solver_error)
    return ParseError('Failed to parse input text file as NetParameter: %s' % net_error)


def run(args):
    source, target = args.input_file, args.output_file
    if not os.path.isfile(source):
        raise ParseError('input file not found: %s' % source)
    message = read_any(source)
    if isinstance(message, caffe_pb2.SolverParameter):
        needed = solver_needs_upgrade(message)
        success = True
        if needed:
            cct_io.upgrade_solver(message, source)
        kind = 'SolverParameter'
    else:
        needed = net_needs_upgrade(message)
        success = cct_io.upgrade_net(message, source) if needed else True
        if needed and not success:
            logger.error('Encountered error(s) while upgrading prototxt; see details above.')
        kind = 'NetParameter'
    if not needed:
        logger.error('File already in latest proto format: %s', source)
    binary = _is_binary_path(target)
    if binary:
        cct_io.write_binary(message, target)
    else:
        cct_io.write_text(message, target)
    logger.info('Wrote upgraded %s %s proto to %s', kind, 'binary' if binary else 'text', target)
    return 0 if success else 1

