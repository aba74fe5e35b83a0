"""The digits LeNet (examples/digits) trained by PyTorch DistributedDataParallel over gloo on
127.0.0.1, one process per rank with an even share of the cores as threads (as each cct worker
gets), for benchmarks/grouped_training.py.

Same net, initialisation family (Caffe's xavier: uniform +-sqrt(3/fan_in), zero biases), batch 64
per rank on the rank's shard (record i to rank i mod W), solver settings of lenet_solver.prototxt
(base_lr 0.01, inv policy, momentum 0.9, weight decay 5e-4, biases at twice the rate). PyTorch's SGD
keeps the rate out of its momentum buffer where Caffe folds it in; with the inv policy's slow decay
the two differ by well under a percent of a step.
"""
import os
import socket
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')


def _digits(kind):
    from cct.data.db import Reader
    from cct.proto import caffe_pb2
    images, labels = [], []
    for _, value in Reader(os.path.join(ROOT, 'examples/digits/digits_%s_lmdb' % kind),
                           'lmdb').items():
        datum = caffe_pb2.Datum.FromString(value)
        images.append(np.frombuffer(datum.data, np.uint8).reshape(1, 28, 28))
        labels.append(datum.label)
    return (np.stack(images).astype(np.float32) * np.float32(0.00390625),
            np.array(labels, np.int64))


def _net():
    import torch
    from torch import nn
    net = nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2, 2), nn.Conv2d(20, 50, 5),
                        nn.MaxPool2d(2, 2), nn.Flatten(), nn.Linear(800, 500), nn.ReLU(),
                        nn.Linear(500, 10))
    with torch.no_grad():
        for module in net:
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.uniform_(-np.sqrt(3.0 / fan_in), np.sqrt(3.0 / fan_in))
                module.bias.zero_()
    return net


def _rank(rank, world, port, max_iter, test_interval, target, queue):
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // world))
    torch.manual_seed(1)
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world)
    train_x, train_y = _digits('train')
    test_x, test_y = (torch.from_numpy(a) for a in _digits('test'))
    shard = np.arange(rank, len(train_y), world)
    net = torch.nn.parallel.DistributedDataParallel(_net())
    weights = [p for n, p in net.named_parameters() if n.endswith('weight')]
    biases = [p for n, p in net.named_parameters() if n.endswith('bias')]
    optimizer = torch.optim.SGD([{'params': weights, 'lr_mult': 1}, {'params': biases,
                                                                     'lr_mult': 2}],
                                lr=0.01, momentum=0.9, weight_decay=5e-4)
    dist.barrier()
    started, reached, position = time.perf_counter(), None, 0
    for iteration in range(max_iter):
        if rank == 0 and iteration and iteration % test_interval == 0 and reached is None:
            with torch.no_grad():
                accuracy = (net.module(test_x).argmax(1) == test_y).float().mean().item()
            if accuracy >= target:
                reached = time.perf_counter() - started
        rate = 0.01 * (1 + 0.0001 * iteration) ** -0.75
        for group in optimizer.param_groups:
            group['lr'] = rate * group['lr_mult']
        rows = shard[(position + np.arange(64)) % len(shard)]
        position += 64
        loss = F.cross_entropy(net(torch.from_numpy(train_x[rows])),
                               torch.from_numpy(train_y[rows]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    elapsed = time.perf_counter() - started
    if rank == 0:
        with torch.no_grad():
            accuracy = (net.module(test_x).argmax(1) == test_y).float().mean().item()
        queue.put({'world': world, 'updates': max_iter, 'updates_per_s': max_iter / elapsed,
                   'seconds_to_target': reached, 'final_accuracy': accuracy})
    dist.destroy_process_group()


def run_ddp(world, max_iter, test_interval, target):
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    context = mp.get_context('spawn')
    queue = context.Queue()
    processes = [context.Process(target=_rank, args=(rank, world, port, max_iter, test_interval,
                                                     target, queue)) for rank in range(world)]
    for process in processes:
        process.start()
    result = queue.get(timeout=600)
    for process in processes:
        process.join(60)
    return result
