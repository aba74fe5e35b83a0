"""Score a model (Caffe's ``caffe test``): ``cct test --model M --weights W [--iterations 50]``.

The net is built in phase TEST (as in Caffe, ``--phase`` is not used here), runs ``--iterations``
forward passes and logs ``Batch i, <output> = v`` for every element of every output, then
``Loss: <mean>`` and each output's mean, with `` (* w = l loss)`` for loss outputs.
``--devices``/``--split`` split each batch across devices (cct.parallel); the outputs are the
whole batch's.
"""
import numpy as np

from cct.errors import CctError
from cct.log import logger
from cct.net import Net
from cct.proto import caffe_pb2
from cct.solver.solver import cpp_float
from cct.tools.common import (add_devices_flags, add_gpu_flag, add_net_state_flags,
                              hybrid_devices, stages_from_flag, use_device)


def add_arguments(parser):
    parser.add_flag('model', default='', help='The model definition protocol buffer text file.')
    parser.add_flag('weights', default='',
                    help='The trained weights (.caffemodel or .caffemodel.h5) to score.')
    parser.add_flag('iterations', type=int, default=50, help='The number of iterations to run.')
    parser.add_flag('phase', default='', help='Not used by test (the net is built in TEST).')
    add_net_state_flags(parser)
    add_gpu_flag(parser)
    add_devices_flags(parser)


def run(args):
    if not args.model:
        raise CctError('Need a model definition to score (--model).')
    if not args.weights:
        raise CctError('Need model weights to score (--weights).')
    devices = hybrid_devices(args)
    if devices is None:
        use_device(args.gpu)
        net = Net(args.model, caffe_pb2.TEST, level=args.level,
                  stages=stages_from_flag(args.stage))
    else:
        from cct.parallel import HybridNet
        net = HybridNet(args.model, caffe_pb2.TEST, level=args.level,
                        stages=stages_from_flag(args.stage), devices=devices,
                        split=args.split or 'auto')
    net.copy_from(args.weights)
    logger.info('Running for %d iterations.', args.iterations)
    names, weights, sums = [], [], None
    for blob_id in net.output_blob_indices:
        count = net.blobs_list[blob_id].count
        names += [net.blob_names[blob_id]] * count
        weights += [net.loss_weight_by_blob[blob_id]] * count
    # Caffe sums the per-batch losses and scores in float.
    loss = np.float32(0)
    for i in range(args.iterations):
        loss += np.float32(net.forward_from_to())
        scores = np.concatenate([net.blobs_list[b].data.ravel().astype(np.float32)
                                 for b in net.output_blob_indices] or [np.zeros(0, np.float32)])
        sums = scores.copy() if sums is None else sums + scores
        for name, score in zip(names, scores):
            logger.info('Batch %d, %s = %s', i, name, cpp_float(score))
    loss /= np.float32(max(args.iterations, 1))
    logger.info('Loss: %s', cpp_float(loss))
    if sums is None:
        return
    for name, weight, total in zip(names, weights, sums):
        mean = np.float32(total / np.float32(args.iterations))
        suffix = ' (* %s = %s loss)' % (cpp_float(weight), cpp_float(np.float32(weight) * mean)) \
            if weight else ''
        logger.info('%s = %s%s', name, cpp_float(mean), suffix)
