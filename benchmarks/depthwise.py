"""Per-layer time of a net's depthwise convolutions (MobileNet v1's and v2's by default).

Forward and backward of each distinct depthwise layer at the training batch, through cct's direct
kernels and through the lowering Caffe's GEMM per channel takes (CCT_DEPTHWISE=0), and PyTorch's
depthwise conv2d on the same shape when torch is installed.

The layers are built one at a time from the prototxt's shapes (the net at batch 1 gives them) and
timed in this one process, float32, each figure the fastest of --repeats runs; the backward column
is the data and weight gradients together, as a training iteration runs them. PyTorch runs with
as many threads as cct's kernels use.

    python benchmarks/depthwise.py                                   # MobileNet v1 and v2, batch 32
    python benchmarks/depthwise.py --nets ../shared/nets/zoo/mobilenet_deploy.prototxt --batch 8
    OMP_NUM_THREADS=1 python benchmarks/depthwise.py --cpu-time      # on a busy host

``--cpu-time`` times with the process's CPU time instead of the wall clock: with one thread it is
that thread's own time, which other processes on a shared host disturb much less.
"""
import argparse
import collections
import os
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.abspath(os.environ.get('CCT_SHARED', os.path.join(HERE, '..', '..', 'shared')))
NETS = [os.path.join(SHARED, 'nets', 'zoo', name)
        for name in ('mobilenet_deploy.prototxt', 'mobilenet_v2_deploy.prototxt')]

Shape = collections.namedtuple('Shape', 'channels height width outputs kernel stride pad dilation')


def depthwise_shapes(path):
    """{Shape: count} of the depthwise Convolution layers (group == input channels) of a net."""
    from cct import Net
    from cct.proto import caffe_pb2
    net = Net(path, phase=caffe_pb2.TEST)
    shapes = collections.Counter()
    for layer, bottom in zip(net.layers, net.bottom_vecs):
        if layer.type == 'Convolution' and layer.group > 1 and layer.group == layer.channels:
            g = layer.geometry
            shapes[Shape(layer.channels, *bottom[0].shape[2:], layer.num_output, g.kernel,
                         g.stride, g.pad, g.dilation)] += 1
    return shapes


CLOCK = time.perf_counter


def fastest(action, repeats):
    action()
    best = float('inf')
    for _ in range(repeats):
        start = CLOCK()
        action()
        best = min(best, CLOCK() - start)
    return best * 1e3


def time_cct(shape, batch, direct, repeats):
    from cct import workspace
    from cct.testing import make_layer
    workspace.DEPTHWISE = direct
    params = ('num_output: %d kernel_h: %d kernel_w: %d stride_h: %d stride_w: %d pad_h: %d '
              'pad_w: %d dilation: %d dilation: %d group: %d bias_term: false '
              'weight_filler { type: "msra" }'
              % ((shape.outputs,) + shape.kernel + shape.stride + shape.pad + shape.dilation +
                 (shape.channels,)))
    layer, bottom, top = make_layer('type: "Convolution" convolution_param { %s }' % params,
                                    [(batch, shape.channels, shape.height, shape.width)],
                                    dtype=np.float32, seed=1)
    expected = 'direct' if direct else None
    assert expected is None or layer.lowering.forward == expected, layer.lowering
    top[0].diff[...] = np.random.default_rng(2).standard_normal(top[0].shape)
    forward = fastest(lambda: layer.forward(bottom, top), repeats)
    backward = fastest(lambda: layer.backward(top, [True], bottom), repeats)
    return forward, backward, layer.lowering.forward


def time_torch(shape, batch, repeats, threads):
    import torch
    torch.set_num_threads(threads)
    x = torch.randn(batch, shape.channels, shape.height, shape.width, requires_grad=True)
    conv = torch.nn.Conv2d(shape.channels, shape.outputs, shape.kernel, shape.stride, shape.pad,
                           shape.dilation, groups=shape.channels, bias=False)
    y = conv(x)
    grad = torch.randn_like(y)

    def forward():
        with torch.no_grad():
            conv(x)

    def backward():
        # Forward kept out of the figure: one graph, its backward run again each time.
        x.grad = None
        conv.weight.grad = None
        y.backward(grad, retain_graph=True)
    return fastest(forward, repeats), fastest(backward, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--nets', nargs='+', default=NETS)
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--no-torch', action='store_true')
    parser.add_argument('--cpu-time', action='store_true',
                        help='time with the process CPU time (use with OMP_NUM_THREADS=1)')
    args = parser.parse_args()
    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time
    from cct import kernels
    threads = kernels.max_threads()
    with_torch = not args.no_torch
    if with_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            with_torch = False
    print('batch %d, float32, %d threads; ms per call (%s, fastest of %d)'
          % (args.batch, threads, 'CPU time' if args.cpu_time else 'wall clock', args.repeats))
    header = '%-34s %3s  %15s  %15s  %s' % ('layer (C HxW -> M, k s p)', 'n', 'gemm fwd/bwd',
                                             'direct fwd/bwd', 'torch fwd/bwd' if with_torch
                                             else '')
    for path in args.nets:
        print('\n' + os.path.basename(path))
        print(header)
        totals = np.zeros(6)
        for shape, count in depthwise_shapes(path).items():
            before = time_cct(shape, args.batch, False, args.repeats)
            after = time_cct(shape, args.batch, True, args.repeats)
            theirs = time_torch(shape, args.batch, args.repeats, threads) if with_torch \
                else (float('nan'), float('nan'))
            row = np.array(before[:2] + after[:2] + theirs)
            totals += count * row
            name = '%d %dx%d -> %d, %d %d %d' % (shape.channels, shape.height, shape.width,
                                                 shape.outputs, shape.kernel[0], shape.stride[0],
                                                 shape.pad[0])
            print('%-34s %3d  %7.2f/%7.2f  %7.2f/%7.2f  %7.2f/%7.2f' % ((name, count) + tuple(row)))
        print('%-34s %3s  %7.1f/%7.1f  %7.1f/%7.1f  %7.1f/%7.1f' % (('total (x n)', '') +
                                                                    tuple(totals)))


if __name__ == '__main__':
    main()
