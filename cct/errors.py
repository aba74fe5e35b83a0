"""Exceptions for user mistakes: each names the file, line, layer or blob at fault, as Caffe's messages do."""


class CctError(Exception):
    """Base class of every error cct raises for bad input."""


class ParseError(CctError, ValueError):
    """A prototxt or binary file that does not parse; the message names the file (and line:column)."""


class NetError(CctError, ValueError):
    """A net that cannot be built: unknown bottom, duplicate top, bad arity, unknown layer type."""


class UnknownLayerError(NetError):
    """A layer type that no module registered; the message lists the known types."""


class WeightsError(CctError, ValueError):
    """Weights that do not fit the net: blob count or shape mismatch while copying."""


class SolverError(CctError, ValueError):
    """A solver file or solver state that cannot be used."""


class DataError(CctError, ValueError):
    """A dataset that cannot be read: missing path, empty database, corrupt or inconsistent record."""


class MissingPackageError(CctError, ImportError):
    """An optional package that a tool or layer needs is not installed; the message gives the pip
    command that adds it."""


def install_hint(extra, *requirements):
    """How to add an optional dependency: the packages themselves, or cct's extra from a checkout.
    (Not ``pip install "cct[extra]"``: the ``cct`` on PyPI is an unrelated project.)"""
    return 'pip install %s (or pip install -e ".[%s]" in cct\'s checkout)' % (
        ' '.join('"%s"' % requirement for requirement in requirements), extra)


class OutOfMemoryError(CctError, MemoryError):
    """An allocation the machine cannot make: the message names the layer, the blob and the bytes
    asked for. Still a MemoryError, for callers that catch that."""

    def __init__(self, message, blob=None, nbytes=None, shape=None, what=None):
        super().__init__(message)
        self.blob = blob
        self.nbytes = nbytes
        self.shape = shape
        self.what = what


class ExportError(CctError, ValueError):
    """A net that cannot be exported (to ONNX) exactly: the message names the layer and option."""


class DeviceError(CctError, ValueError):
    """A device that does not exist or cannot run what was asked: an unknown name, an index out of
    range (the message lists the devices that exist), a layer the device cannot run, an allocation
    larger than its memory, a kernel that does not compile."""
