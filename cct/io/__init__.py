"""Caffe's files: prototxt, .caffemodel, .binaryproto, .solverstate (read, write, upgrade)."""
from cct.io.blobproto import (array_to_blobproto, blobproto_to_array, fill_blobproto,
                              proto_shape)
from cct.io.protofiles import (parse_text, read_binary, read_net, read_net_binary, read_net_text,
                               read_solver_text, read_text, write_binary, write_text)
from cct.io.upgrade import upgrade_net, upgrade_solver
