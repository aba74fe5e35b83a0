"""``cct time --devices A,B [--split auto|F1,F2]``: the time of a net whose batches are split across
devices (cct.parallel.HybridNet), with each device's share and its time per layer, so that the
balance shows.

With ``--split auto`` the iterations that measure the devices run first, unlogged, and the
benchmark times the split they settle on. Each device runs its share in a thread of its own and is
synchronised around each of its layers; a layer's time leaves out the waits for the other devices
at the whole-batch synchronisations (losses, Accuracy, BatchNorm), which the iteration's time
includes. The steps around the devices' passes (reading the batch, handing out the shares and the
weights, summing the gradients) are shown apart.
"""
import time

from cct.log import logger
from cct.parallel import HybridNet
from cct.solver.solver import cpp_float
from cct.tools.common import stages_from_flag

# Calibration passes at most: AutoSplit settles after 1 + 2 + 2.
_MAX_CALIBRATION = 50


def run_hybrid(args, phase, devices, update_solver):
    net = HybridNet(args.model, phase, level=args.level, stages=stages_from_flag(args.stage),
                    devices=devices, split=args.split or 'auto')
    try:
        _benchmark(args, net, update_solver)
    finally:
        net.close()


def _benchmark(args, net, update_solver):
    logger.info('Performing Forward')
    logger.info('Initial loss: %s', cpp_float(net.forward_from_to()))
    logger.info('Performing Backward')
    net.backward_from_to()
    solver = update_solver(net)
    calibration = 0
    while not net.splitter.settled and calibration < _MAX_CALIBRATION:
        net.forward_from_to()
        net.backward_from_to()
        calibration += 1
    if calibration:
        logger.info('The auto split settled after %d measured iterations', calibration + 1)
    net.timing = True
    for times in net.layer_times:
        for pair in times:
            pair[0] = pair[1] = 0.0
    net.step_times = dict.fromkeys(net.step_times, 0.0)
    clock = time.perf_counter
    forward_total = backward_total = update_total = 0.0
    logger.info('*** Benchmark begins ***')
    logger.info('Testing for %d iterations.', args.iterations)
    total_start = clock()
    for j in range(args.iterations):
        iteration_start = clock()
        net.forward_from_to()
        forward_total += clock() - iteration_start
        backward_start = clock()
        net.backward_from_to()
        backward_total += clock() - backward_start
        logger.info('Iteration: %d forward-backward time: %s ms.', j + 1,
                    cpp_float((clock() - iteration_start) * 1e3))
        start = clock()
        solver.apply_update()
        net.device.synchronize()
        update_total += clock() - start
    total = clock() - total_start - update_total
    n = max(args.iterations, 1)

    def ms(seconds):
        return cpp_float(seconds * 1e3 / n)
    logger.info('Split of the batch of %d: %s', net.batch, ', '.join(
        '%s %d (%.1f%%)' % (name, share, 100.0 * share / net.batch)
        for name, share in zip(net.device_names, net.shares)))
    for index, (name, share) in enumerate(zip(net.device_names, net.shares)):
        replica = net.replicas[index]
        times = net.layer_times[index]
        busy = sum(f + b for f, b in times)
        logger.info('Device %s: %d images, %s ms computing per iteration', name, share, ms(busy))
        for i, layer_name in enumerate(replica.layer_names):
            logger.info('%10s\t%s\tforward: %s ms.', layer_name, name, ms(times[i][0]))
            logger.info('%10s\t%s\tbackward: %s ms.', layer_name, name, ms(times[i][1]))
    for step, seconds in net.step_times.items():
        logger.info('Hybrid step %s: %s ms.', step, ms(seconds))
    logger.info('Average Forward pass: %s ms.', ms(forward_total))
    logger.info('Average Backward pass: %s ms.', ms(backward_total))
    logger.info('Average Forward-Backward: %s ms.', ms(total))
    logger.info('Total Time: %s ms.', cpp_float(total * 1e3))
    logger.info('Average Update (SGD, momentum 0.9, weight decay 0.0005, %d learnable blobs, on '
                '%s): %s ms.', len(net.learnable_params), net.device, ms(update_total))
    logger.info('*** Benchmark ends ***')
