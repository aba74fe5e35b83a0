"""The layer contract and the registry of layer types (Caffe's layer.hpp and layer_factory.hpp).

A layer is pycaffe's Python layer: ``setup(bottom, top)``, ``reshape(bottom, top)``,
``forward(bottom, top)``, ``backward(top, propagate_down, bottom)`` on lists of Blobs. It reads its
LayerParameter (``self.param``) in ``setup`` and never overrides ``__init__``. Arity is declared with
class attributes and checked once by the base class. A user's ``type: "Python"`` layer subclasses
this same class.
"""
import numpy as np

from cct.blob import BlobVec
from cct.devices import cpu
from cct.errors import DeviceError, NetError, OutOfMemoryError, UnknownLayerError
from cct.fillers import fill
from cct.io.upgrade import V1_TYPE_NAMES
from cct.log import logger
from cct.proto import caffe_pb2

_REGISTRY = {}

# Layer types Caffe registers that cct does not implement: building one fails naming the layer and
# saying why, instead of calling a real Caffe type unknown (and never skipping it silently).
UNSUPPORTED_TYPES = {
    'RNN': "Caffe's recurrent layers (RNN, LSTM, LSTMUnit) are not implemented in cct",
    'LSTM': "Caffe's recurrent layers (RNN, LSTM, LSTMUnit) are not implemented in cct",
    'LSTMUnit': "Caffe's recurrent layers (RNN, LSTM, LSTMUnit) are not implemented in cct",
    'WindowData': "R-CNN's window sampler (window_data_param) is not implemented in cct; feed "
                  'the windows through an Input, MemoryData or HDF5Data layer instead',
}


# The parameter messages with Caffe's ``engine`` field (DEFAULT, CAFFE, CUDNN). cct has one engine
# per device; a request for cuDNN runs cct's own kernels, and is said so once per layer type.
_ENGINE_PARAMS = ('convolution_param', 'pooling_param', 'lrn_param', 'relu_param',
                  'sigmoid_param', 'softmax_param', 'tanh_param', 'spp_param')
_CUDNN = 2
_ENGINE_NOTED = set()


def _note_cudnn_engine(layer):
    for field in _ENGINE_PARAMS:
        if layer.param.HasField(field) and getattr(layer.param, field).engine == _CUDNN \
                and layer.type not in _ENGINE_NOTED:
            _ENGINE_NOTED.add(layer.type)
            logger.warning("Layer '%s' (type %s) asks for engine: CUDNN; cct has no cuDNN "
                           'engine and runs its own kernels for %s layers', layer.name,
                           layer.type, layer.type)


def register(type_name):
    """Class decorator: make a layer class buildable from prototxt ``type: "<type_name>"``."""
    def decorate(cls):
        if type_name in _REGISTRY:
            raise RuntimeError('layer type %r registered twice: %s and %s' % (
                type_name, _REGISTRY[type_name].__qualname__, cls.__qualname__))
        _REGISTRY[type_name] = cls
        cls.type = type_name
        return cls
    return decorate


def layer_type_list():
    """Every registered layer type string, sorted (pycaffe's ``caffe.layer_type_list()``)."""
    return sorted(_REGISTRY)


def layer_class(type_name, layer_name=''):
    """The class registered for ``type_name`` (a V2 type string or a V1 enum name)."""
    canonical = V1_TYPE_NAMES.get(type_name, type_name)
    cls = _REGISTRY.get(canonical)
    if cls is None and canonical in UNSUPPORTED_TYPES:
        raise UnknownLayerError("Unsupported layer type: %s (layer '%s'): %s"
                                % (type_name, layer_name, UNSUPPORTED_TYPES[canonical]))
    if cls is None:
        raise UnknownLayerError("Unknown layer type: %s (layer '%s'); known types: %s"
                                % (type_name, layer_name, ', '.join(layer_type_list())))
    return cls


class Layer:
    """Base class of every layer; subclasses override ``setup``/``reshape``/``forward``/``backward``.

    Class attributes declare the arity (None = unconstrained): ``num_bottom``/``num_top`` exact,
    ``min_bottom``/``max_bottom``/``min_top``/``max_top`` bounds, ``equal_bottom_top`` for layers
    that map bottom i to top i. Devices: ``primitives`` lists the Device primitives the layer
    calls (names, or (name, op) pairs for ``unary``); None means it computes with numpy on host
    arrays and runs on the CPU only. ``host_layer = True`` marks layers that work on host arrays
    on every device by design, as Caffe's do (data layers, Python layers): their blobs sync. ``auto_top_blobs`` lets the net add anonymous tops up to the
    minimum; ``inplace = False`` refuses top == bottom; ``loss_layer`` gives top 0 a default loss
    weight of 1, as Caffe's LossLayer does.

    Attributes:
        param: this layer's ``caffe_pb2.LayerParameter`` (a copy owned by the net).
        blobs: learnable parameter blobs (``BlobVec``).
        phase: ``caffe_pb2.TRAIN`` or ``caffe_pb2.TEST``.
        param_propagate_down: per param blob, whether its gradient is wanted (lr_mult != 0).
    """

    type = 'Python'
    num_bottom = min_bottom = max_bottom = None
    num_top = min_top = max_top = None
    equal_bottom_top = False
    auto_top_blobs = False
    inplace = True
    loss_layer = False
    primitives = None
    host_layer = False
    # Hybrid execution (cct.parallel): the tops whose whole-batch value is the sum of the shares'
    # values (a loss, an accuracy), and the group of replicas this layer's share belongs to.
    whole_batch_tops = ()
    share_group = None

    def __init__(self, param=None, dtype=np.float32, device=None):
        self.param = param if param is not None else caffe_pb2.LayerParameter()
        self.phase = self.param.phase
        self.param_str = self.param.python_param.param_str
        self.dtype = np.dtype(dtype)
        self.device = device if device is not None else cpu.open_device(0)
        self.blobs = BlobVec(dtype=self.dtype, device=self.device)
        self.param_propagate_down = []
        self.loss_weights = []

    @property
    def name(self):
        return self.param.name

    # The contract subclasses implement.
    def setup(self, bottom, top):
        """Read ``self.param``, check bottoms, create ``self.blobs``; called once."""

    def reshape(self, bottom, top):
        """Shape tops and buffers from the bottoms; called before every forward."""
        raise NotImplementedError('%s must implement reshape' % self.describe())

    def forward(self, bottom, top):
        raise NotImplementedError('%s must implement forward' % self.describe())

    def backward(self, top, propagate_down, bottom):
        if any(propagate_down):
            raise NotImplementedError('%s cannot backpropagate to its bottoms' % self.describe())

    def resume_state(self):
        """What this layer needs to go on exactly where it stopped after a resume (a data
        source's read position, a private generator's state) as JSON-able values, or None when
        nothing (the default): written beside each solverstate (cct.solver.resume_state)."""
        return None

    def set_resume_state(self, state):
        """Put back what ``resume_state`` returned."""
        raise NotImplementedError('%s keeps no resume state' % self.describe())

    def shares_diffs(self):
        """Whether a top's diff buffer is a bottom's or a param's (Caffe's ShareDiff, set at every
        reshape): the net must then leave those blobs' diff buffers where they are."""
        return False

    def allow_force_backward(self, bottom_index):
        """Whether ``force_backward`` may make bottom ``bottom_index`` need a gradient."""
        return not (self.loss_layer and bottom_index == 1)

    # Helpers for subclasses.
    def whole_batch_sum(self, values):
        """``values`` (a number or a small host array) summed over every share of the batch, in
        the shares' fixed order, when cct.parallel splits the batch across devices; ``values``
        itself otherwise. Each call with a split is a synchronisation of the devices: every
        replica of this layer must make the same calls in the same order."""
        if self.share_group is None:
            return values
        return self.share_group.all_sum(values)

    def make_param_blobs(self, specs):
        """Create ``self.blobs`` from ``(shape, filler)`` pairs (filler None = constant 0).

        Blobs given in the prototxt itself (``LayerParameter.blobs``) are used instead, as Caffe
        skips filler initialisation for them; their shapes must match.
        """
        from cct.io.blobproto import blobproto_to_array
        if len(self.param.blobs):
            if len(self.param.blobs) != len(specs):
                self.fail('the prototxt gives %d param blobs, the layer has %d'
                          % (len(self.param.blobs), len(specs)))
            for i, ((shape, _), proto) in enumerate(zip(specs, self.param.blobs)):
                values = blobproto_to_array(proto, dtype=self.dtype)
                if values.size != int(np.prod(shape)):
                    self.fail('param blob %d in the prototxt has shape %s, expected %s'
                              % (i, values.shape, tuple(shape)))
                self.blobs.add_blob(tuple(shape)).data[...] = values.reshape(shape)
            self.param.ClearField('blobs')
            return
        for i, (shape, filler) in enumerate(specs):
            try:
                blob = self.blobs.add_blob(tuple(shape))
            except OutOfMemoryError as error:
                error.what = 'param blob %d' % i
                raise
            if filler is not None:
                fill(blob, filler, '%s, param blob %d' % (self.describe(), i))

    # What the net calls.
    def check_device(self):
        """Raise DeviceError when this layer cannot run on its device (checked at net build)."""
        device = self.device
        if device.host or self.host_layer:
            return
        where = self.where()
        if self.primitives is None:
            raise DeviceError('%s is not supported on device %s (it computes with numpy on the '
                              'host; run the net on the CPU)' % (where, device))
        for need in self.primitives:
            name, op = need if isinstance(need, tuple) else (need, None)
            if not device.supports(name, op):
                raise DeviceError('%s is not supported on device %s (it needs the %s primitive%s,'
                                  ' which the device lacks)'
                                  % (where, device, name, ' for %s' % op if op else ''))

    def describe(self):
        return "layer '%s' (type %s)" % (self.name, self.type)

    def where(self):
        """The layer's description as error messages start with it: "Layer 'x' (type T)"."""
        text = self.describe()
        return text[0].upper() + text[1:]

    def fail(self, message, error=NetError):
        """Raise ``error`` with ``message`` prefixed by this layer's name and type."""
        raise error('%s: %s' % (self.where(), message))

    def check_arity(self, num_bottom, num_top):
        def count(what, n, exact, low, high):
            if exact is not None and n != exact:
                self.fail('takes %d %s blob(s), got %d' % (exact, what, n))
            if low is not None and n < low:
                self.fail('takes at least %d %s blob(s), got %d' % (low, what, n))
            if high is not None and n > high:
                self.fail('takes at most %d %s blob(s), got %d' % (high, what, n))
        count('bottom', num_bottom, self.num_bottom, self.min_bottom, self.max_bottom)
        count('top', num_top, self.num_top, self.min_top, self.max_top)
        if self.equal_bottom_top and num_bottom != num_top:
            self.fail('takes the same number of bottom and top blobs, got %d and %d'
                      % (num_bottom, num_top))

    def layer_setup(self, bottom, top):
        """Caffe's ``Layer::SetUp``: arity check, ``setup``, ``reshape``, loss weights."""
        self.check_arity(len(bottom), len(top))
        _note_cudnn_engine(self)
        if self.loss_layer and not self.param.loss_weight:
            self.param.loss_weight.append(1.0)
        self.setup(bottom, top)
        self.reshape(bottom, top)
        weights = list(self.param.loss_weight)
        if weights and len(weights) != len(top):
            self.fail('loss_weight must be unspecified or specified once per top blob '
                      '(%d given, %d tops)' % (len(weights), len(top)))
        self.loss_weights = weights + [0.0] * (len(top) - len(weights))
        self.seed_loss_diffs(top)
        if len(self.param_propagate_down) != len(self.blobs):
            self.param_propagate_down = [True] * len(self.blobs)

    def seed_loss_diffs(self, top):
        """Fill each loss top's diff with its weight: that is how Caffe seeds backward."""
        for blob, weight in zip(top, self.loss_weights):
            if weight:
                self.device.fill(blob.dev_diff, weight)

    def loss(self, top_index):
        return self.loss_weights[top_index] if top_index < len(self.loss_weights) else 0.0

    def run_forward(self, bottom, top):
        """Caffe's ``Layer::Forward``: reshape, forward, and return the weighted loss of the tops."""
        self.reshape(bottom, top)
        self.forward(bottom, top)
        loss = 0.0
        for blob, weight in zip(top, self.loss_weights):
            if weight:
                loss += weight * self.device.sum(blob.dev_data)
        return loss
