"""Caffe con Troll's hybrid execution: each batch split across devices (the CPU and accelerators)
in proportion to their throughput, the gradients summed and one update applied (HybridNet; the
solvers' ``devices``/``split`` options and ``cct train|test|time --devices``)."""
from cct.parallel.hybrid_net import HybridNet
from cct.parallel.split import parse_devices, parse_split, whole_images

__all__ = ['HybridNet', 'parse_devices', 'parse_split', 'whole_images']
