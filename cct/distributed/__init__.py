"""Omnivore's compute groups for cct: a parameter server that applies Caffe's update per arriving
gradient, and groups of workers that split a batch, run as Ray actors.

Python API::

    from cct.distributed import train_grouped
    trainer = train_grouped('examples/digits/lenet_solver.prototxt', groups=2, group_size=1)
    print(trainer.iteration, trainer.last_snapshot, trainer.lost)

``train_grouped(solver, groups, group_size, ray_address=None, local_ray=None, snapshot=None,
worker_cpus=None, group_resources=None, signals=None, on_update=None, timeout=300,
placement_timeout=60)`` is the same as ``cct train --solver S --groups G --group-size K [--ray-address A] [--snapshot F]``; see
GroupedTrainer for every argument. ParameterServer and GroupWorker are plain Python objects (no
Ray), for drivers of their own such as a simulator; Ray is imported only when training starts.
"""
from cct.distributed.server import ApplyResult, GroupGradient, ParameterServer
from cct.distributed.worker import GroupWorker
from cct.distributed.groups import GroupedTrainer, ServerDiedError, train_grouped

__all__ = ['ApplyResult', 'GroupGradient', 'GroupWorker', 'GroupedTrainer', 'ParameterServer',
           'ServerDiedError', 'train_grouped']
