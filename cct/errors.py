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


class DeviceError(CctError, ValueError):
    """A device that does not exist or cannot run what was asked: an unknown name, an index out of
    range (the message lists the devices that exist), a layer the device cannot run, an allocation
    larger than its memory, a kernel that does not compile."""
