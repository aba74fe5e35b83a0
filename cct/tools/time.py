"""Benchmark a model's execution time (Caffe's ``caffe time``): ``cct time --model M [--iterations 50]``.

Logs Caffe's lines (initial pass, per-iteration forward-backward times, per-layer averages, totals)
and then what Caffe does not show: the time of one SGD update (momentum 0.9, weight decay 5e-4) over
the net's learnable params, and every layer and the update ranked by share of an iteration, with how
busy the cores were meanwhile (process CPU time / wall time, of the kernels' thread count), so that
a pass running on one core stands out. A BatchNorm and the Scale the net fuses into it
(cct/layers/fusion.py) run as the net runs them, timed as one under the BatchNorm's name. As in
Caffe, every layer's backward is called with its bottom_need_backward flags (none is skipped), and
the net is assumed to take no external input. On an accelerator (``--gpu N``) the device is
synchronised around each layer and the update, so each time is the device's work for it, as
Caffe's CUDA timer events measure. With ``--devices`` (a batch split across devices,
cct.parallel) it shows each device's share and its time per layer (cct.tools.time_hybrid).
"""
import logging
import time

from cct import kernels
from cct.errors import CctError
from cct.layers import fusion
from cct.log import logger
from cct.net import Net
from cct.proto import caffe_pb2
from cct.solver import SGDSolver
from cct.solver.solver import cpp_float
from cct.tools.common import (add_devices_flags, add_gpu_flag, add_net_state_flags,
                              hybrid_devices, phase_from_flag, stages_from_flag, use_device)


def add_arguments(parser):
    parser.add_flag('model', default='', help='The model definition protocol buffer text file.')
    parser.add_flag('iterations', type=int, default=50, help='The number of iterations to run.')
    parser.add_flag('phase', default='', help='Optional; network phase (TRAIN or TEST, default '
                                              'TRAIN).')
    add_net_state_flags(parser)
    add_gpu_flag(parser)
    add_devices_flags(parser)


def _update_solver(net):
    param = caffe_pb2.SolverParameter(base_lr=0.0, lr_policy='fixed', momentum=0.9,
                                      weight_decay=0.0005)
    # base_lr 0: the update does all its arithmetic but leaves the weights as they are. The solver's
    # own construction log would only clutter the benchmark's.
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        return SGDSolver(param, net=net, dtype=net.dtype)
    finally:
        logger.setLevel(level)


def run(args):
    if not args.model:
        raise CctError('Need a model definition to time (--model).')
    phase = phase_from_flag(args.phase, caffe_pb2.TRAIN)
    devices = hybrid_devices(args)
    if devices is not None:
        from cct.tools.time_hybrid import run_hybrid
        return run_hybrid(args, phase, devices, _update_solver)
    use_device(args.gpu)
    net = Net(args.model, phase, level=args.level, stages=stages_from_flag(args.stage))
    logger.info('Performing Forward')
    logger.info('Initial loss: %s', cpp_float(net.forward_from_to()))
    logger.info('Performing Backward')
    net.backward_from_to()
    solver = _update_solver(net)
    layers, bottoms, tops = net.layers, net.bottom_vecs, net.top_vecs
    forward_times, backward_times = [0.0] * len(layers), [0.0] * len(layers)
    cpu_times = [0.0] * len(layers)
    forward_total = backward_total = update_total = update_cpu = 0.0
    clock, cpu_clock = time.perf_counter, time.process_time
    sync = net.device.synchronize
    pairs = net.fused_pairs
    scales = {j: i for i, j in pairs.items()}
    logger.info('*** Benchmark begins ***')
    logger.info('Testing for %d iterations.', args.iterations)
    total_start = clock()
    for j in range(args.iterations):
        iteration_start = clock()
        i = 0
        while i < len(layers):
            sync()
            start, cpu_start = clock(), cpu_clock()
            if i in pairs:
                fusion.forward(net, i, pairs[i])
            else:
                layers[i].run_forward(bottoms[i], tops[i])
            sync()
            forward_times[i] += clock() - start
            cpu_times[i] += cpu_clock() - cpu_start
            i = pairs.get(i, i) + 1
        forward_total += clock() - iteration_start
        backward_start = clock()
        i = len(layers) - 1
        while i >= 0:
            sync()
            start, cpu_start = clock(), cpu_clock()
            k = scales.get(i)
            if k is not None and fusion.backward_ready(net, k, i):
                fusion.backward(net, k, i)
            else:
                k = i
                layers[i].backward(tops[i], net.bottom_need_backward[i], bottoms[i])
            sync()
            backward_times[k] += clock() - start
            cpu_times[k] += cpu_clock() - cpu_start
            i = k - 1
        backward_total += clock() - backward_start
        logger.info('Iteration: %d forward-backward time: %s ms.', j + 1,
                    cpp_float((clock() - iteration_start) * 1e3))
        sync()
        start, cpu_start = clock(), cpu_clock()
        solver.apply_update()
        sync()
        update_total += clock() - start
        update_cpu += cpu_clock() - cpu_start
    total = clock() - total_start - update_total
    n = max(args.iterations, 1)

    def ms(seconds):
        return cpp_float(seconds * 1e3 / n)
    logger.info('Average time per layer: ')
    for i, name in enumerate(net.layer_names):
        logger.info('%10s\tforward: %s ms.', name, ms(forward_times[i]))
        logger.info('%10s\tbackward: %s ms.', name, ms(backward_times[i]))
    logger.info('Average Forward pass: %s ms.', ms(forward_total))
    logger.info('Average Backward pass: %s ms.', ms(backward_total))
    logger.info('Average Forward-Backward: %s ms.', ms(total))
    logger.info('Total Time: %s ms.', cpp_float(total * 1e3))
    logger.info('Average Update (SGD, momentum 0.9, weight decay 0.0005, %d learnable blobs): '
                '%s ms.', len(net.learnable_params), ms(update_total))
    _log_ranking(net, forward_times, backward_times, cpu_times, update_total, update_cpu, n,
                 scales)
    logger.info('*** Benchmark ends ***')


def _log_ranking(net, forward_times, backward_times, cpu_times, update_total, update_cpu, n,
                 fused):
    threads = kernels.max_threads()
    rows = []
    for i, (name, layer, f, b) in enumerate(zip(net.layer_names, net.layers, forward_times,
                                                backward_times)):
        label = '%s (%s)  [forward %.3f, backward %.3f]' % (name, layer.type, f * 1e3 / n,
                                                             b * 1e3 / n)
        if i in fused:
            label += '  fused into %s' % net.layer_names[fused[i]]
        rows.append((f + b, cpu_times[i], label))
    rows.append((update_total, update_cpu, 'solver update (SGD)'))
    whole = sum(row[0] for row in rows) or 1.0
    logger.info('Where the time goes (per iteration, share of forward + backward + update; cores: '
                'process CPU time / wall time, of %d threads):', threads)
    for spent, cpu, label in sorted(rows, key=lambda row: row[0], reverse=True):
        cores = cpu / spent if spent else 0.0
        logger.info('%8.3f ms  %5.1f%%  cores %4.2f/%d  %s', spent * 1e3 / n,
                    100.0 * spent / whole, cores, threads, label)
    single = sum(row[0] for row in rows if row[0] and row[1] / row[0] < 1.5 and threads > 1)
    if threads > 1:
        logger.info('Passes keeping under 1.5 cores busy: %.1f%% of the iteration.',
                    100.0 * single / whole)
