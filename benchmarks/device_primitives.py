"""Time a few device primitives on any cct device: GEMM's GFLOP/s at square sizes and one convolution
layer's forward, data gradient and weight gradient (CIFAR-10 quick's conv2, batch 100 by default).

On PoCL this measures a correctness path, not a speed claim: PoCL runs the OpenCL kernels on the same
CPU cores as cct's own CPU device. Each figure is the fastest of --repeats runs, the device
synchronised around each.

    python benchmarks/device_primitives.py --device opencl:0
    python benchmarks/device_primitives.py --device cpu --sizes 256 512 1024
"""
import argparse
import time

import numpy as np


def best_time(device, action, repeats):
    action()
    device.synchronize()
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        device.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='opencl:0')
    parser.add_argument('--sizes', type=int, nargs='+', default=[256, 512])
    parser.add_argument('--dtype', default='float32', choices=['float32', 'float64'])
    parser.add_argument('--batch', type=int, default=100)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    from cct.devices import get_device
    device = get_device(args.device)
    dtype = np.dtype(args.dtype)
    print('device %s: %s' % (device.name, device.describe()['name']))
    rng = np.random.default_rng(0)
    for size in args.sizes:
        a, b = (device.from_host(rng.standard_normal((size, size)).astype(dtype)) for _ in 'ab')
        out = device.empty((size, size), dtype)
        seconds = best_time(device, lambda: device.gemm(a, b, out), args.repeats)
        print('gemm %5d^3 %s: %8.2f ms  %7.2f GFLOP/s' % (size, dtype.name, seconds * 1e3,
                                                          2 * size ** 3 / seconds / 1e9))
    # CIFAR-10 quick conv2: 32 -> 32 channels, 16x16, 5x5 kernel, pad 2.
    num, channels, hw, kernel, pad = args.batch, 32, (16, 16), (5, 5), (2, 2)
    plan = device.conv_plan(num, channels, hw, 32, hw, 1, kernel, pad, (1, 1), (1, 1), dtype)
    images = device.from_host(rng.standard_normal((num, channels) + hw).astype(dtype))
    weights = device.from_host(rng.standard_normal((32, plan.col_rows)).astype(dtype))
    bias = device.zeros(32, dtype)
    rows = device.empty((num, 32, plan.col_pixels), dtype)
    back = device.empty(images.shape, dtype)
    weight_diff = device.zeros((32, plan.col_rows), dtype)
    flops = 2 * num * 32 * plan.col_rows * plan.col_pixels
    for name, action in (
            ('forward', lambda: device.conv_forward(plan, images, weights, bias, rows)),
            ('data gradient', lambda: device.conv_backward_data(plan, rows, weights, None, back)),
            ('weight gradient', lambda: device.conv_backward_weights(plan, images, rows,
                                                                     weight_diff, bias))):
        seconds = best_time(device, action, args.repeats)
        print('conv 32x16x16 k5 b%d %-15s: %8.2f ms  %7.2f GFLOP/s'
              % (num, name, seconds * 1e3, flops / seconds / 1e9))


if __name__ == '__main__':
    main()
