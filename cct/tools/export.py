"""Export a trained net to ONNX: ``cct export NET.prototxt --weights W.caffemodel --onnx OUT.onnx
[--opset N] [--batch N | --dynamic-batch]``.

Caffe has no such tool. The net is built in phase TEST (Dropout removed, BatchNorm normalising by
its stored statistics), its layers become standard ONNX operators with Caffe's arithmetic spelled
out (pooling's ceil rounding, AVE's divisor at padded borders, LRN's alpha/size), the inputs keep
the net's input names and shapes (``--batch`` sets the batch size, ``--dynamic-batch`` makes it
symbolic) and the outputs are named after the net's output blobs. A layer or option ONNX cannot
express exactly is an error naming both. The file passes onnx.checker's full check and holds the
weights (beside it, as OUT.onnx.data, above 2 GB). Needs the ``onnx`` extra.
"""
import os
import time

from cct import io as cct_io
from cct.errors import CctError
from cct.export import DEFAULT_OPSET, export_onnx
from cct.log import logger
from cct.net import Net
from cct.proto import caffe_pb2
from cct.tools.common import add_net_state_flags, stages_from_flag


def add_arguments(parser):
    parser.add_argument('model', help='The net definition (prototxt); deploy or train_val')
    parser.add_flag('weights', default='',
                    help='The trained weights (.caffemodel or .caffemodel.h5; several separated '
                         'by , load in order)')
    parser.add_flag('onnx', default='', help='The ONNX file to write')
    parser.add_flag('opset', type=int, default=DEFAULT_OPSET,
                    help='ONNX opset to target (13 or newer; default %d)' % DEFAULT_OPSET)
    batch = parser.add_mutually_exclusive_group()
    batch.add_argument('-batch', '--batch', dest='batch', type=int, default=None,
                       help="Export at this batch size instead of the net's own")
    batch.add_argument('-dynamic-batch', '--dynamic-batch', '--dynamic_batch', dest='dynamic_batch',
                       action='store_true', help='Make the batch axis symbolic (any batch size)')
    add_net_state_flags(parser)


# Where each data layer declares its batch size.
_BATCH_FIELDS = {'Data': 'data_param', 'ImageData': 'image_data_param',
                 'HDF5Data': 'hdf5_data_param', 'MemoryData': 'memory_data_param',
                 'WindowData': 'window_data_param'}


def _set_input_batches(param, batch, dynamic_batch, model):
    """Give every Input layer's shape (and every data layer's batch_size) the requested batch
    size; refuse an Input shape without one."""
    for layer in param.layer:
        if batch is not None and layer.type in _BATCH_FIELDS:
            getattr(layer, _BATCH_FIELDS[layer.type]).batch_size = batch
        elif batch is not None and layer.type == 'DummyData':
            dummy = layer.dummy_data_param
            for shape in dummy.shape:
                shape.dim[0] = batch
            dummy.num[:] = [batch] * len(dummy.num)
        if layer.type != 'Input':
            continue
        if not len(layer.input_param.shape):
            raise CctError("%s: input layer '%s' declares no shape; give input_param { shape "
                           '{ dim: ... } } to export it' % (model, layer.name))
        for shape in layer.input_param.shape:
            if not len(shape.dim):
                raise CctError("%s: input layer '%s' has an empty shape" % (model, layer.name))
            if batch is not None:
                shape.dim[0] = batch
            elif shape.dim[0] <= 0:
                if not dynamic_batch:
                    raise CctError("%s: input '%s' (layer '%s') has no fixed batch size (dim 0 "
                                   'is %d); pass --batch N or --dynamic-batch'
                                   % (model, ', '.join(layer.top), layer.name, shape.dim[0]))
                shape.dim[0] = 1   # any size traces the graph; the exported batch is symbolic


def run(args):
    if not args.onnx:
        raise CctError('Need an output file (--onnx OUT.onnx).')
    if not args.weights:
        raise CctError('Need trained weights to export (--weights W.caffemodel).')
    if args.batch is not None and args.batch <= 0:
        raise CctError('--batch must be positive (got %d)' % args.batch)
    if not os.path.isfile(args.model):
        raise CctError('net file not found: %s' % args.model)
    for one in args.weights.split(','):
        if not os.path.isfile(one.strip()):
            raise CctError('weights file not found: %s' % one.strip())
    param = cct_io.read_net_text(args.model)
    param.state.phase = caffe_pb2.TEST
    _set_input_batches(param, args.batch, args.dynamic_batch, args.model)
    start = time.perf_counter()
    net = Net(param, level=args.level, stages=stages_from_flag(args.stage))
    net.copy_from(args.weights)
    export_onnx(net, args.onnx, opset=args.opset, batch=args.batch,
                dynamic_batch=args.dynamic_batch)
    logger.info('Exported %s with weights %s to %s (opset %d, %.1f MB) in %.2f s', args.model,
                args.weights, args.onnx, args.opset, os.path.getsize(args.onnx) / 1e6,
                time.perf_counter() - start)
