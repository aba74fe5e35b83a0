"""ONNX export of TEST-phase nets, each Caffe quirk spelled out in standard ONNX operators
(``export_onnx``; ``cct export`` on the command line). Needs the ``onnx`` extra."""
from cct.errors import ExportError
from cct.export.exporter import DEFAULT_OPSET, export_onnx

__all__ = ['DEFAULT_OPSET', 'ExportError', 'export_onnx']
