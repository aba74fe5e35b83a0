"""The ``Python`` layer type: a user's class named by ``python_param`` (Caffe's python_layer.hpp and
GetPythonLayer in layer_factory.cpp).

``python_param { module: "m" layer: "Cls" param_str: "..." }`` imports ``m`` with the normal import
machinery (so its directory must be on PYTHONPATH / sys.path, as with Caffe) and builds ``m.Cls``,
which must subclass ``cct.Layer`` (pycaffe's ``caffe.Layer``). Rules that are easy to get wrong:

* ``self.param_str`` (a string) and ``self.phase`` (0 = TRAIN, 1 = TEST) are set before ``setup``.
* ``reshape`` runs after ``setup`` and before every forward, and must shape the tops.
* A Python layer has no automatic loss weight: give ``loss_weight`` in the prototxt if its top is a
  loss.
* Param blobs are created in ``setup`` with ``self.blobs.add_blob(*shape)``; the net then registers
  them like any layer's (lr_mult, decay_mult, sharing by name).

Building a net that has a Python layer imports its module, and so runs that module's code: ``cct
train``, ``test``, ``time`` and ``info`` alike (``cct draw`` and ``cct upgrade`` only read the
prototxt). A prototxt from an untrusted source can run code. The import is logged (INFO) with the
module and class the prototxt names, and ``cct info`` lists them with the module's file.
"""
import importlib

import numpy as np

from cct.errors import NetError
from cct.layers.base import Layer, register
from cct.log import logger


@register('Python')
class PythonLayer(Layer):
    """Factory for ``type: "Python"``: constructing it returns an instance of the user's class."""

    # The user's code sees host numpy arrays on every device, as in pycaffe.
    host_layer = True

    def __new__(cls, param=None, dtype=np.float32, device=None):
        if param is None:
            raise NetError('a Python layer is built from its LayerParameter (python_param names '
                           'the module and class)')
        where = "Layer '%s' (type Python)" % param.name
        python_param = param.python_param
        if not python_param.module or not python_param.layer:
            raise NetError('%s: python_param must give both module and layer (got module %r, '
                           'layer %r)' % (where, python_param.module, python_param.layer))
        logger.info("Python layer '%s': importing module '%s' for class '%s'", param.name,
                    python_param.module, python_param.layer)
        try:
            module = importlib.import_module(python_param.module)
        except ImportError as e:
            raise NetError("%s: cannot import python_param.module '%s': %s (is its directory on "
                           'PYTHONPATH?)' % (where, python_param.module, e)) from e
        user_class = getattr(module, python_param.layer, None)
        if user_class is None:
            raise NetError("%s: module '%s' (%s) has no class '%s'" % (
                where, python_param.module, getattr(module, '__file__', '?'), python_param.layer))
        if not (isinstance(user_class, type) and issubclass(user_class, Layer)):
            raise NetError("%s: %s.%s must be a class derived from cct.Layer (caffe.Layer), got %r"
                           % (where, python_param.module, python_param.layer, user_class))
        layer = user_class(param, dtype, device)
        layer.host_layer = True
        layer.param_str = python_param.param_str
        layer.phase = param.phase
        return layer
