"""Caffe's files: prototxt, .caffemodel, .binaryproto, .solverstate (read, write, upgrade)."""
from cct.io.blobproto import (array_to_blobproto, blobproto_to_array, fill_blobproto,
                              proto_shape, read_blobproto, write_blobproto)
from cct.io.protofiles import (parse_text, read_binary, read_net, read_net_binary, read_net_text,
                               read_solver_text, read_text, write_binary, write_bytes,
                               write_text)
from cct.io.upgrade import upgrade_net, upgrade_solver
# pycaffe's caffe.io helpers (``import cct as caffe; caffe.io.Transformer``).
from cct.io.images import load_image, oversample, resize_image
from cct.io.pycaffe_io import (Transformer, array_to_datum, arraylist_to_blobprotovector_str,
                               blobprotovector_str_to_arraylist, datum_to_array)
