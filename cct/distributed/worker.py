"""A worker of a compute group: the train net on its shard of the data, computing the gradient of
whatever model the parameter server hands it (Omnivore's conv compute server, whole-net).

A plain Python object; the Ray actor in cct.distributed.ray_actors wraps it. The process-wide
solver rank and count are set before the net is built, so its Data/ImageData/HDF5Data layers read
record i only when ``i mod count == rank`` (cct.data.shard), and the random seed is
``random_seed + rank`` as in Caffe's multi-GPU training.
"""
import math
import time
import types

import numpy as np

from cct import rng, runtime
from cct.errors import SolverError
from cct.solver import nets as _nets
from cct.solver import resume_state
from cct.solver.nonfinite import describe_non_finite
from cct.distributed.server import GroupGradient


class GroupWorker:
    """The train net of one worker.

    Args:
        param: the ``caffe_pb2.SolverParameter`` (its train net, iter_size and random_seed).
        source: the solver file's name, for messages.
        rank: this worker's index among all workers of all groups (its data shard).
        count: the number of workers of all groups.
        dtype: the nets' float type.
    """

    def __init__(self, param, source, rank, count, dtype=np.float32):
        runtime.set_solver_count(count)
        runtime.set_solver_rank(rank)
        if param.random_seed >= 0:
            rng.set_random_seed(param.random_seed + rank)
        self.param = param
        self.rank = rank
        self.count = count
        self.net = _nets.build_train_net(param, source, np.dtype(dtype))
        # Only compute() runs the net, and it returns param gradients: no blob diff is read.
        self.net.share_diffs()
        self.dtype = self.net.dtype
        # Params with lr_mult 0 are never moved by an update, but a layer may change them in its
        # forward pass (BatchNorm's running statistics): they travel back as state.
        self.frozen = [i for i, rate in enumerate(self.net.params_lr) if rate == 0]

    def load(self, weights):
        for blob, array in zip(self.net.learnable_params, weights):
            np.copyto(blob.data, array.reshape(blob.data.shape))

    def compute(self, model):
        """The gradient of ``model`` (a ``(version, weights)`` pair from ParameterServer.model) on
        this worker's next batch (``iter_size`` of them, accumulated as Caffe does).

        Returns:
            GroupGradient.
        """
        started = time.perf_counter()
        version, weights = model
        self.load(weights)
        net = self.net
        net.clear_param_diffs()
        dtype = np.dtype(self.dtype).type
        loss = dtype(0)
        for _ in range(self.param.iter_size):
            value = net.forward_from_to()
            if not math.isfinite(value):
                raise SolverError('Worker %d, model of iteration %d: the loss is %s, not finite; '
                                  'its gradient was not sent. %s'
                                  % (self.rank, version, value, describe_non_finite(net)))
            net.backward_from_to()
            loss += dtype(value)
        loss /= dtype(self.param.iter_size)
        outputs = [net.blobs_list[i].data.ravel() for i in net.output_blob_indices]
        outputs = np.concatenate(outputs).astype(self.dtype) if outputs else \
            np.zeros(0, self.dtype)
        gradients = [blob.diff.copy() for blob in net.learnable_params]
        state = {i: net.learnable_params[i].data.copy() for i in self.frozen}
        part = GroupGradient(version, float(loss), outputs, gradients,
                             time.perf_counter() - started, state)
        if self.count == 1:
            part.resume = self.resume_state()
        return part

    def resume_state(self):
        """The data read positions and generators a snapshot of the model just computed on
        must hold for an exact resume (cct.solver.resume_state), when this is the only worker."""
        return {'train': self.net.resume_state(), 'rng': rng.get_state()}

    def resume(self, state_file, iteration):
        """Go on reading where the run that wrote ``state_file`` (at ``iteration``) stopped,
        from its cct resume state; only the single worker of a one-group run does (the shards of
        several workers start from their first records, as Caffe resumes)."""
        solver_view = types.SimpleNamespace(net=self.net, test_nets=[], iter=iteration)
        resume_state.restore(solver_view, state_file)

    def forward_loss(self, model):
        """The loss of ``model`` on this worker's next batch (the final display of training)."""
        self.load(model[1])
        return float(self.net.forward_from_to())
