"""cct: Caffe-compatible CNN training in Python (``import cct as caffe`` keeps pycaffe scripts working)."""
__version__ = '0.1.0'
