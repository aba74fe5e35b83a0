"""HybridNet: one net whose every batch is split across several devices (CcT's ParallelizedBridge
and batch proportions, whole-net): a replica of the net per device, run at once in a thread each.

The net's source layers (data layers and Inputs: no bottoms) run once, on the host, in a feeder net
and read the whole batch; each replica is the rest of the net behind an Input of its share of the
images. The first device's replica is the primary: it holds the weights the solver updates and
snapshots. Before each forward the primary's weights reach every replica; after each backward the
replicas' gradients are added to the primary's in device order (so a run is repeatable) and the
others' are zeroed, which keeps iter_size's accumulation right. Batch statistics are the whole
batch's (Layer.whole_batch_sum; cct.parallel.share_group): the outputs that are sums of the shares'
values (losses, accuracies) are added, the others are joined along the batch axis.
"""
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cct.errors import CctError, NetError
from cct.log import logger
from cct.net import Net, read_net_param
from cct.net_api import PycaffeNetMixin
from cct.netgraph import filter_net
from cct.parallel.batch_axis import refuse_batch_mixing
from cct.parallel.outputs import CombinedOutputs
from cct.parallel.share_group import ShareGroup
from cct.parallel.split import (AutoSplit, FixedSplit, check_batch, parse_devices,
                                parse_split)
from cct.proto import caffe_pb2

# Source layers that are not data: they hold weights and belong in every replica.
_REPLICATED_SOURCES = ('Parameter',)


class HybridNet(PycaffeNetMixin):
    """A net whose batches are split across ``devices``.

    Args:
        model: a prototxt path or a ``NetParameter`` (as ``Net``'s).
        phase, level, stages, weights, dtype: as ``Net``'s.
        devices: 'cpu,opencl:0' or a list of names/Devices; the first holds the master weights.
        split: 'auto' (default: measured throughput) or one fraction per device ('0.5,0.5' or a
            list), adding up to 1.

    Attributes:
        primary: the first device's replica (a Net): weights, layers, params.
        feeder: the host Net of the source layers (the whole batch).
        replicas: every device's Net, in ``devices`` order.
        shares: the images each device ran in the last pass.
        layer_times: per replica, per layer, [forward, backward] seconds accumulated while
            ``timing`` is on (synchronised around each layer, without the waits at
            synchronisations).
        step_times: seconds accumulated (always) by the steps around the replicas' passes:
            'sources' (the feeder's forward), 'feed' (the shares to the devices), 'broadcast'
            (the weights to the replicas), 'gather' (the gradients to the primary), 'outputs'.
    """

    def __init__(self, model, *args, phase=None, level=None, stages=None, weights=None,
                 dtype=np.float32, devices=None, split='auto'):
        if len(args) == 1:
            phase = args[0]
        elif len(args) == 2:
            weights, phase = args
        elif args:
            raise TypeError('HybridNet(model, phase) or HybridNet(model, weights, phase)')
        self.devices = parse_devices(devices if devices is not None else 'cpu')
        self.device_names = [str(device) for device in self.devices]
        fractions = parse_split(split, len(self.devices))
        param = filter_net(read_net_param(model, phase, level, stages))
        self.dtype = np.dtype(dtype)
        self.splitter = AutoSplit(self.device_names) if fractions == 'auto' else \
            FixedSplit(fractions, self.device_names)
        layers = list(param.layer)
        sources = [layer for layer in layers
                   if not len(layer.bottom) and layer.type not in _REPLICATED_SOURCES]
        if not sources:
            raise NetError("net '%s' has no data or Input layer: a hybrid split cuts the batch "
                           'those layers make' % param.name)
        feeder_param = caffe_pb2.NetParameter(name=param.name, state=param.state)
        feeder_param.layer.extend(sources)
        logger.info('Hybrid net: the source layers (%s) read the whole batch on the host',
                    ', '.join(layer.name for layer in sources))
        self.feeder = Net(feeder_param, dtype=self.dtype, device='cpu')
        self.input_names = [self.feeder.blob_names[i] for i in self.feeder.output_blob_indices]
        self._check_batch_axis()
        shares = self.splitter.shares(self.batch, self._shape_key())
        self.replicas = []
        for index, device in enumerate(self.devices):
            body = caffe_pb2.NetParameter()
            body.CopyFrom(param)
            del body.layer[:]
            feed = body.layer.add(name='hybrid_input', type='Input')
            for name in self.input_names:
                feed.top.append(name)
                shape = (max(shares[index], 1),) + self.feeder.blob_by_name(name).shape[1:]
                feed.input_param.shape.add().dim.extend(shape)
            body.layer.extend(layer for layer in layers if layer not in sources)
            logger.info('Hybrid net: replica %d on %s', index, device)
            self.replicas.append(Net(body, dtype=self.dtype, device=device))
        self.primary = self.replicas[0]
        refuse_batch_mixing(self.primary)
        self.group = ShareGroup(self.device_names)
        for index, replica in enumerate(self.replicas):
            handle = self.group.handle(index)
            for layer in replica.layers:
                layer.share_group = handle
        self._pool = ThreadPoolExecutor(len(self.replicas), thread_name_prefix='cct-hybrid') \
            if len(self.replicas) > 1 else None
        self._current = None
        self._wall = 0.0
        self._busy = [0.0] * len(self.replicas)
        self.shares = list(shares)
        self.timing = False
        self.layer_times = [[[0.0, 0.0] for _ in replica.layers] for replica in self.replicas]
        self.step_times = dict.fromkeys(('sources', 'feed', 'broadcast', 'gather', 'outputs'), 0.0)
        self._make_views()
        if weights is not None:
            self.copy_from(weights)

    # ------------------------------------------------------------------ construction
    def _check_batch_axis(self):
        shapes = [self.feeder.blob_by_name(name).shape for name in self.input_names]
        batch = shapes[0][0] if shapes[0] else 0
        for name, shape in zip(self.input_names, shapes):
            if not shape or shape[0] != batch:
                raise NetError("hybrid split: the source blob '%s' has shape %s, but every "
                               "source blob must hold the batch on its first axis (%d, as '%s')"
                               % (name, shape, batch, self.input_names[0]))
        check_batch(batch, self.device_names)
        self.batch = batch

    def _shape_key(self):
        return tuple(self.feeder.blob_by_name(name).shape for name in self.input_names)

    def _make_views(self):
        """The blobs pycaffe's ``net.blobs`` shows: the sources' whole batch, the outputs
        combined over the shares, and the primary's share of everything else."""
        primary = self.primary
        self.blob_names = list(primary.blob_names)
        self.blobs_list = list(primary.blobs_list)
        for name in self.input_names:
            self.blobs_list[primary.blob_names.index(name)] = self.feeder.blob_by_name(name)
        self.outputs_combined = CombinedOutputs(primary, self.batch, self.dtype)
        for blob_id, blob in self.outputs_combined.blobs.items():
            self.blobs_list[blob_id] = blob
        self.input_blob_indices = [primary.blob_names.index(self.feeder.blob_names[i])
                                   for i in self.feeder.input_blob_indices]

    def __getattr__(self, name):
        # Everything else (layers, params, learning rates, weights I/O) is the primary's.
        if name in ('primary', 'feeder') or name.startswith('__'):
            raise AttributeError(name)
        return getattr(self.primary, name)

    @property
    def device(self):
        return self.primary.device

    def blob_by_name(self, name):
        try:
            return self.blobs_list[self.blob_names.index(name)]
        except ValueError:
            raise KeyError("Unknown blob name '%s' in net '%s'" % (name, self.name)) from None

    def has_blob(self, name):
        return name in self.blob_names

    # ------------------------------------------------------------------ passes
    def forward_from_to(self, start=0, end=None):
        """The whole net forward on the split batch; returns the whole batch's weighted loss."""
        self._whole_passes_only(start, end, 0, len(self.primary.layers) - 1)
        clock = time.perf_counter
        if self._current is not None:
            self.splitter.record(self.shares, self._busy, self._wall)
        entered = started = clock()
        self.feeder.forward_from_to()
        self._lap('sources', started)
        key = self._shape_key()
        if key[0][0] != self.batch:
            check_batch(key[0][0], self.device_names)
            self.batch = key[0][0]
        self.shares = self.splitter.shares(self.batch, key)
        active = [i for i, share in enumerate(self.shares) if share]
        start_image, started = 0, clock()
        for index in active:
            self._feed(index, start_image, self.shares[index])
            start_image += self.shares[index]
        started = self._lap('feed', started)
        self._broadcast_weights(active)
        self._lap('broadcast', started)
        self._busy = [0.0] * len(self.replicas)
        losses = self._run(active, 'forward')
        self._wall = clock() - entered
        started = clock()
        self._keep_states(active)
        self.outputs_combined.combine(self.replicas, self.shares, active)
        self._lap('outputs', started)
        self._current = active
        total = 0.0
        for index in active:
            total += losses[index]
        return total

    def backward_from_to(self, start=None, end=0):
        """The whole net backward; the primary's param diffs then hold the whole batch's
        gradient (added to what they held: iter_size accumulates as on one device)."""
        self._whole_passes_only(end, start, 0, len(self.primary.layers) - 1)
        active = self._current
        if active is None:
            raise CctError('hybrid net: backward needs a forward first')
        entered = time.perf_counter()
        self._run(active, 'backward')
        started = time.perf_counter()
        self._gather_gradients(active)
        self._wall += self._lap('gather', started) - entered

    def _lap(self, step, started):
        now = time.perf_counter()
        self.step_times[step] += now - started
        return now

    def reshape(self):
        """Shapes follow the sources' blobs at every forward; nothing to do ahead of it."""

    def clear_param_diffs(self):
        for replica in self.replicas:
            replica.clear_param_diffs()

    @staticmethod
    def _whole_passes_only(first, last, begin, end):
        if (first if first is not None else begin) != begin or \
                (last if last is not None else end) != end:
            raise CctError('a hybrid net runs whole passes (layers %d to %d), not part of one'
                           % (begin, end))

    def _feed(self, index, start, count):
        replica = self.replicas[index]
        resized = False
        for name in self.input_names:
            whole = self.feeder.blob_by_name(name)
            blob = replica.blob_by_name(name)
            shape = (count,) + whole.shape[1:]
            if blob.shape != shape:
                blob.reshape(shape)
                resized = True
            replica.device.from_host(whole.data[start:start + count], out=blob.dev_data)
        if resized:
            replica.reshape()

    def _broadcast_weights(self, active):
        source = self.primary
        for index in active:
            if index == 0:
                continue
            replica = self.replicas[index]
            for master, copy in zip(source.learnable_params, replica.learnable_params):
                replica.device.from_host(source.device.to_host(master.dev_data),
                                         out=copy.dev_data)

    def _keep_states(self, active):
        # Params no update moves but a forward changes (BatchNorm's running statistics) are the
        # same on every replica that ran; the primary keeps them even when it sat out.
        if 0 in active:
            return
        ran = self.replicas[active[0]]
        for param_id, rate in enumerate(self.primary.params_lr):
            if rate == 0:
                self.primary.learnable_params[param_id].data[...] = \
                    ran.learnable_params[param_id].data

    def _run(self, active, direction):
        self.group.begin(active)
        results = {}
        try:
            if len(active) == 1:
                results[active[0]] = self._pass(active[0], direction)
            else:
                futures = {index: self._pool.submit(self._pass, index, direction)
                           for index in active}
                errors = []
                for index in active:
                    try:
                        results[index] = futures[index].result()
                    except BaseException as error:  # noqa: B902  (re-raised below)
                        errors.append(error)
                if errors:
                    # The first error that is not another replica giving up waiting for it.
                    raise next((e for e in errors if type(e).__name__ != '_Abandoned'),
                               errors[0])
        finally:
            self.group.begin([])
        return results

    def _pass(self, index, direction):
        """Replica ``index``'s forward or backward, in its own thread; its busy seconds kept."""
        replica = self.replicas[index]
        waited = self.group.waited[index]
        started = time.perf_counter()
        try:
            if self.timing:
                return self._timed_pass(index, direction)
            if direction == 'forward':
                return replica.forward_from_to()
            replica.backward_from_to()
            return None
        except BaseException:
            self.group.abort()
            raise
        finally:
            replica.device.synchronize()
            self._busy[index] += time.perf_counter() - started - \
                (self.group.waited[index] - waited)

    def _timed_pass(self, index, direction):
        replica = self.replicas[index]
        sync, clock, times = replica.device.synchronize, time.perf_counter, self.layer_times[index]
        slot = 0 if direction == 'forward' else 1
        order = range(len(replica.layers)) if slot == 0 else \
            range(len(replica.layers) - 1, -1, -1)
        loss = 0.0
        for i in order:
            sync()
            waited, start = self.group.waited[index], clock()
            if slot == 0:
                loss += replica.forward_from_to(i, i)
            else:
                replica.backward_from_to(i, i)
            sync()
            times[i][slot] += clock() - start - (self.group.waited[index] - waited)
        return loss

    def _gather_gradients(self, active):
        others = [index for index in active if index != 0]
        if not others:
            return
        primary = self.primary
        for param_id, blob in enumerate(primary.learnable_params):
            if primary.params_lr[param_id] == 0:
                continue
            total = primary.device.to_host(blob.dev_diff) if 0 in active else None
            for index in others:
                replica = self.replicas[index]
                diff = replica.learnable_params[param_id].dev_diff
                part = replica.device.to_host(diff)
                total = part.copy() if total is None else total + part
                replica.device.fill(diff, 0)
            primary.device.from_host(total, out=blob.dev_diff)

    # ------------------------------------------------------------------ state
    def resume_state(self):
        """The data sources' read positions (they live in the feeder)."""
        return self.feeder.resume_state()

    def set_resume_state(self, states, source):
        self.feeder.set_resume_state(states, source)

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
