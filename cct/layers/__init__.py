"""cct's layers, one family per module, each registered under its Caffe type name.

Importing this package imports every layer module below (an explicit list, no directory walk), so
the registry knows every type once ``cct.layers`` is imported.
"""
import importlib

from cct.layers.base import Layer, layer_class, layer_type_list, register

_MODULES = [
    'input', 'split', 'convolution', 'pooling', 'inner_product', 'relu', 'softmax',
    'softmax_loss', 'accuracy', 'dropout', 'python_layer', 'lrn', 'concat',
    'neuron', 'power', 'prelu', 'batch_norm', 'scale_bias', 'mvn',
    'eltwise', 'slicing', 'reshaping', 'tile', 'reduction', 'argmax', 'embed', 'routing',
    'distance_loss', 'logistic_loss', 'hinge_loss', 'infogain_loss',
    'deconvolution', 'im2col', 'spp', 'crop',
    'data', 'image_data', 'hdf5_data', 'memory_data', 'dummy_data',
]

for _name in _MODULES:
    importlib.import_module('cct.layers.' + _name)

__all__ = ['Layer', 'layer_class', 'layer_type_list', 'register']
