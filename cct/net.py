"""Net: layers wired by blob names, built from a NetParameter and a NetState (Caffe's net.cpp).

Construction follows Net::Init step by step: filter layers by the state, insert Splits, create each
layer from the registry, wire bottoms/tops (in-place when a top repeats the bottom at its index),
set layers up, register parameters (shared by ParamSpec name), decide which layers need backward,
and collect outputs (blobs nobody consumes, sorted by name).
"""
import os

import numpy as np

from cct import io as cct_io
from cct import runtime
from cct import layers as _layers  # noqa: F401  (registers every layer type)
from cct.blob import Blob, shape_string
from cct.devices import get_device
from cct.devices.synced import SyncedMemory
from cct.errors import CctError, DeviceError, NetError, OutOfMemoryError, ParseError
from cct.layers import fusion
from cct.layers.base import layer_class
from cct.log import logger
from cct.netgraph import diff_sharing_groups, filter_net, insert_splits
from cct.proto import caffe_pb2
from cct.net_api import PycaffeNetMixin
from cct.net_weights import NetWeightsMixin


def read_net_param(model, phase=None, level=None, stages=None):
    """The NetParameter a Net is built from: ``model`` a prototxt path (parsed and upgraded) or a
    ``NetParameter`` (copied), with pycaffe's ``phase``, ``level`` and ``stages`` applied."""
    if isinstance(model, caffe_pb2.NetParameter):
        param = caffe_pb2.NetParameter()
        param.CopyFrom(model)
    else:
        model = os.fspath(model)
        if not os.path.isfile(model):
            raise ParseError('net file not found: %s' % model)
        param = cct_io.read_net_text(model)
        if level is None:
            level = 0   # Caffe's Net(file, phase, level = 0) overrides the file's own level
    if phase is not None:
        param.state.phase = phase
    if level is not None:
        param.state.level = level
    if stages:
        param.state.stage.extend(stages)
    return param


class Net(NetWeightsMixin, PycaffeNetMixin):
    """A network ready to run forward and backward.

    Accepts pycaffe's constructor forms: ``Net(model, phase)``, ``Net(model, weights, phase)`` and
    ``Net(model, phase, level=0, stages=None, weights=None)``. ``model`` is a prototxt path (parsed
    and upgraded) or a ``NetParameter`` (used as is, like Caffe's in-memory constructor).
    ``device`` (a Device or a name such as ``opencl:0``) defaults to the process's
    (``set_mode_gpu``/``set_device``, ``CCT_DEVICE``; see cct.runtime).
    """

    def __init__(self, model, *args, phase=None, level=None, stages=None, weights=None,
                 dtype=np.float32, device=None):
        if len(args) == 1:
            phase = args[0]
        elif len(args) == 2:
            weights, phase = args
        elif args:
            raise TypeError('Net(model, phase) or Net(model, weights, phase), got %d extra '
                            'positional arguments' % len(args))
        param = read_net_param(model, phase, level, stages)
        self.dtype = np.dtype(dtype)
        self.device = runtime.current_device() if device is None else get_device(device)
        self._init(param)
        if weights is not None:
            self.copy_from(weights)

    # ------------------------------------------------------------------ construction
    def _init(self, in_param):
        self.name = in_param.name
        self.phase = in_param.state.phase
        param = insert_splits(filter_net(in_param))
        self.param = param
        logger.info('Initializing net from parameters (%s phase, %d layers)',
                    caffe_pb2.Phase.Name(self.phase), len(param.layer))
        self.layers, self.layer_names = [], []
        self.bottom_vecs, self.top_vecs, self.bottom_ids, self.top_ids = [], [], [], []
        self.bottom_need_backward, self.layer_need_backward = [], []
        self.blobs_list, self.blob_names, self.blob_need_backward = [], [], []
        self.input_blob_indices = []
        self.loss_weight_by_blob = []
        self.net_params, self.param_owners, self.param_layer_indices = [], [], []
        self.param_display_names, self.param_id_vecs = [], []
        self.learnable_params, self.learnable_param_ids = [], []
        self.params_lr, self.params_weight_decay, self.has_params_lr, self.has_params_decay = \
            [], [], [], []
        self._param_names_index = {}
        available = set()
        blob_index = {}
        memory = 0
        for layer_id, layer_param in enumerate(param.layer):
            if not layer_param.HasField('phase'):
                layer_param.phase = self.phase
            if len(layer_param.propagate_down) not in (0, len(layer_param.bottom)):
                raise NetError("Layer '%s': propagate_down param must be specified either 0 or "
                               'bottom_size times (%d given, %d bottoms)' % (
                                   layer_param.name, len(layer_param.propagate_down),
                                   len(layer_param.bottom)))
            layer = layer_class(layer_param.type, layer_param.name)(layer_param, self.dtype,
                                                                    self.device)
            layer.check_device()
            self.layers.append(layer)
            self.layer_names.append(layer_param.name)
            logger.info('Creating Layer %s', layer_param.name)
            self.bottom_vecs.append([])
            self.bottom_ids.append([])
            self.top_vecs.append([])
            self.top_ids.append([])
            self.bottom_need_backward.append([])
            need_backward = False
            for bottom_id, blob_name in enumerate(layer_param.bottom):
                if blob_name not in available:
                    raise NetError("Unknown bottom blob '%s' (layer '%s', bottom index %d)"
                                   % (blob_name, layer_param.name, bottom_id))
                blob_id = blob_index[blob_name]
                logger.info('%s <- %s', layer_param.name, blob_name)
                self.bottom_vecs[-1].append(self.blobs_list[blob_id])
                self.bottom_ids[-1].append(blob_id)
                available.discard(blob_name)
                wanted = self.blob_need_backward[blob_id]
                if len(layer_param.propagate_down):
                    wanted = layer_param.propagate_down[bottom_id]
                self.bottom_need_backward[-1].append(wanted)
                need_backward |= self.blob_need_backward[blob_id]
            for top_id, blob_name in enumerate(layer_param.top):
                self._append_top(layer, layer_param, top_id, blob_name, blob_index)
                available.add(blob_name)
                if layer_param.type == 'Input':
                    self.input_blob_indices.append(len(self.blobs_list) - 1)
            if layer.auto_top_blobs:
                needed = max(layer.min_top or 0, layer.num_top or 0)
                for top_id in range(len(layer_param.top), needed):
                    self._append_top(layer, layer_param, top_id, '(automatic)', None)
            logger.info('Setting up %s', layer_param.name)
            try:
                layer.layer_setup(self.bottom_vecs[-1], self.top_vecs[-1])
            except DeviceError as e:
                # An allocation or kernel build that failed on the device: name the layer.
                if str(e).startswith('Layer '):
                    raise
                layer.fail(str(e), DeviceError)
            except (ValueError, ArithmeticError, MemoryError) as e:
                self._name_failure(layer_id, e, 'setting up')
            for top_id, blob_id in enumerate(self.top_ids[-1]):
                while len(self.loss_weight_by_blob) <= blob_id:
                    self.loss_weight_by_blob.append(0.0)
                self.loss_weight_by_blob[blob_id] = layer.loss(top_id)
                blob = self.blobs_list[blob_id]
                logger.info('Top shape: %s', shape_string(blob.shape))
                if layer.loss(top_id):
                    logger.info('    with loss weight %g', layer.loss(top_id))
                memory += blob.count
            need_backward |= self._append_params(layer_id, layer)
            self.layer_need_backward.append(need_backward)
            if need_backward:
                for blob_id in self.top_ids[-1]:
                    self.blob_need_backward[blob_id] = True
        logger.info('Memory required for data: %d', memory * self.dtype.itemsize)
        self._analyse_backward(param.force_backward)
        self.output_blob_indices = [blob_index[name] for name in sorted(available)]
        for name in sorted(available):
            logger.info('This network produces output %s', name)
        self._blob_index = {name: i for i, name in enumerate(self.blob_names)}
        self._layer_index = {name: i for i, name in enumerate(self.layer_names)}
        self.share_weights()
        self._diffs_shared = False
        self._share_diffs()
        self.fused_pairs = fusion.plan(self)
        self._fused_scales = {j: i for i, j in self.fused_pairs.items()}
        logger.info('Network initialization done.')

    def _append_top(self, layer, layer_param, top_id, blob_name, blob_index):
        if blob_index is not None and top_id < len(layer_param.bottom) and \
                blob_name == layer_param.bottom[top_id]:
            if not layer.inplace:
                layer.fail('does not allow in-place computation (top %d is bottom %r)'
                           % (top_id, blob_name))
            logger.info('%s -> %s (in-place)', layer_param.name, blob_name)
            blob_id = blob_index[blob_name]
        elif blob_index is not None and blob_name in blob_index:
            raise NetError("Top blob '%s' produced by multiple sources (layer '%s', top index %d)"
                           % (blob_name, layer_param.name, top_id))
        else:
            logger.info('%s -> %s', layer_param.name, blob_name)
            blob_id = len(self.blobs_list)
            self.blobs_list.append(Blob(dtype=self.dtype, device=self.device))
            self.blob_names.append(blob_name)
            self.blob_need_backward.append(False)
            if blob_index is not None:
                blob_index[blob_name] = blob_id
        self.top_vecs[-1].append(self.blobs_list[blob_id])
        self.top_ids[-1].append(blob_id)

    def _append_params(self, layer_id, layer):
        """Register a layer's param blobs (owned, or shared by ParamSpec name); return whether any
        has a non-zero lr_mult."""
        specs = layer.param.param
        if len(specs) > len(layer.blobs):
            layer.fail('too many params specified (%d ParamSpecs, %d param blobs)'
                       % (len(specs), len(layer.blobs)))
        default = caffe_pb2.ParamSpec()
        need_backward = False
        layer.param_propagate_down = []
        self.param_id_vecs.append([])
        for param_id, blob in enumerate(layer.blobs):
            spec = specs[param_id] if param_id < len(specs) else default
            learns = spec.lr_mult != 0
            need_backward |= learns
            layer.param_propagate_down.append(learns)
            name = spec.name
            self.param_display_names.append(name or str(param_id))
            net_param_id = len(self.net_params)
            self.net_params.append(blob)
            self.param_id_vecs[-1].append(net_param_id)
            self.param_layer_indices.append((layer_id, param_id))
            if not name or name not in self._param_names_index:
                self.param_owners.append(-1)
                if name:
                    self._param_names_index[name] = net_param_id
                self.learnable_param_ids.append(len(self.learnable_params))
                self.learnable_params.append(blob)
                self.has_params_lr.append(spec.HasField('lr_mult'))
                self.has_params_decay.append(spec.HasField('decay_mult'))
                self.params_lr.append(spec.lr_mult)
                self.params_weight_decay.append(spec.decay_mult)
                continue
            owner_id = self._param_names_index[name]
            self.param_owners.append(owner_id)
            owner_layer, owner_param = self.param_layer_indices[owner_id]
            logger.info("Sharing parameters '%s' owned by layer '%s', param index %d",
                        name, self.layer_names[owner_layer], owner_param)
            owner = self.net_params[owner_id]
            permissive = spec.share_mode == caffe_pb2.ParamSpec.PERMISSIVE
            if (owner.count != blob.count) if permissive else (owner.shape != blob.shape):
                layer.fail("cannot share param '%s' owned by layer '%s': %s mismatch. Owner "
                           'layer param shape is %s; sharing layer expects shape %s' % (
                               name, self.layer_names[owner_layer],
                               'count' if permissive else 'shape', shape_string(owner.shape),
                               shape_string(blob.shape)))
            learnable_id = self.learnable_param_ids[owner_id]
            self.learnable_param_ids.append(learnable_id)
            for has, values, field in ((self.has_params_lr, self.params_lr, 'lr_mult'),
                                       (self.has_params_decay, self.params_weight_decay,
                                        'decay_mult')):
                if spec.HasField(field):
                    if has[learnable_id] and values[learnable_id] != getattr(spec, field):
                        layer.fail("shared param '%s' has mismatched %s" % (name, field))
                    has[learnable_id] = True
                    values[learnable_id] = getattr(spec, field)
        return need_backward

    def _analyse_backward(self, force_backward):
        """Caffe's reverse pass: a layer runs backward only if it feeds a loss and some bottom or
        param wants a gradient; ``force_backward`` then turns everything permitted back on."""
        under_loss, skip = set(), set()
        for layer_id in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[layer_id]
            contributes, skips_all = False, True
            for top_id, blob_id in enumerate(self.top_ids[layer_id]):
                name = self.blob_names[blob_id]
                if layer.loss(top_id) or name in under_loss:
                    contributes = True
                if name not in skip:
                    skips_all = False
                if contributes and not skips_all:
                    break
            if self.layer_need_backward[layer_id] and skips_all:
                self.layer_need_backward[layer_id] = False
                self.bottom_need_backward[layer_id] = [False] * len(self.bottom_ids[layer_id])
            if not contributes:
                self.layer_need_backward[layer_id] = False
            logger.info('%s %s backward computation.', self.layer_names[layer_id],
                        'needs' if self.layer_need_backward[layer_id] else 'does not need')
            for bottom_id, blob_id in enumerate(self.bottom_ids[layer_id]):
                if contributes:
                    under_loss.add(self.blob_names[blob_id])
                else:
                    self.bottom_need_backward[layer_id][bottom_id] = False
                if not self.bottom_need_backward[layer_id][bottom_id]:
                    skip.add(self.blob_names[blob_id])
        if force_backward:
            for layer_id, layer in enumerate(self.layers):
                self.layer_need_backward[layer_id] = True
                for bottom_id, blob_id in enumerate(self.bottom_ids[layer_id]):
                    wanted = self.bottom_need_backward[layer_id][bottom_id] or \
                        layer.allow_force_backward(bottom_id)
                    self.bottom_need_backward[layer_id][bottom_id] = wanted
                    self.blob_need_backward[blob_id] |= wanted
                layer.param_propagate_down = [True] * len(layer.blobs)

    def share_weights(self):
        """Make every shared (non-owner) param blob use its owner's data and diff."""
        for param_id, owner_id in enumerate(self.param_owners):
            if owner_id >= 0:
                self.net_params[param_id].share_data(self.net_params[owner_id])
                self.net_params[param_id].share_diff(self.net_params[owner_id])

    def _name_failure(self, layer_id, error, doing):
        """Re-raise ``error`` from layer ``layer_id`` naming the layer (and, for an allocation,
        the blob and the bytes asked for), as a cct error of the same family."""
        if isinstance(error, CctError) and not isinstance(error, OutOfMemoryError):
            raise error
        layer = self.layers[layer_id]
        if isinstance(error, MemoryError):
            nbytes = getattr(error, 'nbytes', None) or getattr(error, '_total_size', None)
            blob = getattr(error, 'blob', None)
            what = getattr(error, 'what', None) or 'an internal buffer'
            for k, top in enumerate(self.top_vecs[layer_id]):
                if top is blob:
                    what = "top blob '%s'" % self.blob_names[self.top_ids[layer_id][k]]
            for k, param in enumerate(layer.blobs):
                if param is blob:
                    what = 'param blob %d' % k
            shape = getattr(error, 'shape', None)
            raise OutOfMemoryError(
                '%s: out of memory %s %s: %s%s' % (
                    layer.where(), doing, what,
                    'could not allocate %d bytes (%.1f GiB)' % (nbytes, nbytes / 2 ** 30)
                    if nbytes else str(error),
                    ' for shape %s' % shape_string(shape) if shape else ''),
                blob=blob, nbytes=nbytes) from None
        # Shape helpers (an axis out of range, a negative top size from a kernel larger than its
        # input) and numpy raise plain ValueErrors and ArithmeticErrors: name the layer.
        raise NetError('%s%s: %s' % (layer.where(),
                                     '' if doing == 'setting up' else ' (%s)' % doing,
                                     error)) from error

    # ------------------------------------------------------------------ running
    def forward_from_to(self, start=0, end=None):
        """Run layers ``start``..``end`` (inclusive) forward; return the summed weighted loss."""
        end = len(self.layers) - 1 if end is None else end
        loss = 0.0
        # Fused pairs (cct/layers/fusion.py) only when no callback watches layer by layer.
        pairs = {} if self._before_forward or self._after_forward else self.fused_pairs
        i = start
        while i <= end:
            for callback in self._before_forward:
                callback(i)
            try:
                j = pairs.get(i)
                if j is not None and j <= end:
                    fusion.forward(self, i, j)
                    i = j
                else:
                    loss += self.layers[i].run_forward(self.bottom_vecs[i], self.top_vecs[i])
            except (ValueError, ArithmeticError, MemoryError) as e:
                self._name_failure(i, e, 'forward')
            for callback in self._after_forward:
                callback(i)
            i += 1
        return loss

    def backward_from_to(self, start=None, end=0):
        """Run layers ``start`` down to ``end`` backward, skipping layers that need no gradient."""
        start = len(self.layers) - 1 if start is None else start
        scales = {} if self._before_backward or self._after_backward else self._fused_scales
        i = start
        while i >= end:
            for callback in self._before_backward:
                callback(i)
            k = scales.get(i)
            if k is not None and k >= end and fusion.backward_ready(self, k, i):
                try:
                    fusion.backward(self, k, i)
                except (ValueError, ArithmeticError, MemoryError) as e:
                    self._name_failure(k, e, 'backward')
                i = k - 1
                continue
            if self.layer_need_backward[i]:
                try:
                    self.layers[i].backward(self.top_vecs[i], self.bottom_need_backward[i],
                                            self.bottom_vecs[i])
                except (ValueError, ArithmeticError, MemoryError) as e:
                    self._name_failure(i, e, 'backward')
            for callback in self._after_backward:
                callback(i)
            i -= 1

    def reshape(self):
        for layer, bottom, top in zip(self.layers, self.bottom_vecs, self.top_vecs):
            layer.reshape(bottom, top)
            layer.seed_loss_diffs(top)
        self._share_diffs()

    def share_diffs(self, enabled=True):
        """Let the diffs of all blobs that are never alive at once share memory, not only those of
        Split tops (netgraph's diff_sharing_groups): a net's activation gradients then take a few
        blobs' worth of memory instead of one per blob (ResNet-50's training at batch 16 peaks at
        3.0 GB instead of 3.9).

        Afterwards a blob's diff is scratch outside the backward pass that computes it: after
        ``backward()`` most blobs' ``.diff`` hold another blob's gradient, where Caffe's keep their
        own. Param gradients, loss-weighted tops (the seeded diffs) and what the solver computes
        are unchanged, bit for bit. So only code that reads no blob's diff after backward turns
        it on: ``cct train`` does for its training net (no script runs between its steps), as do
        the benchmarks; pycaffe nets and solvers keep Caffe's diffs unless a script asks.
        ``share_diffs(False)`` gives each blob its own diff again (zeroed).
        """
        enabled = bool(enabled)
        if enabled == self._diffs_shared:
            return
        previous = [blob_id for group in self._diff_groups for blob_id in group]
        self._diffs_shared = enabled
        self._diff_groups = None
        self._share_diffs()
        now = {blob_id for group in self._diff_groups for blob_id in group}
        for blob_id in previous:
            if blob_id not in now:
                self.blobs_list[blob_id].release_diff()

    @property
    def diffs_shared(self):
        """Whether share_diffs is on (every blob's diff may be scratch after backward)."""
        return self._diffs_shared

    def _share_diffs(self):
        """Point the blobs of each diff-sharing group at one buffer (again after a reshape, which
        may have grown a blob). Without share_diffs only Split tops share: their diffs are scratch
        after backward, but Caffe's keep each consumer's gradient, which nothing downstream of
        the Split's backward reads."""
        if getattr(self, '_diff_groups', None) is None:
            self._diff_groups = diff_sharing_groups(
                [layer.type for layer in self.layers], self.bottom_ids, self.top_ids,
                self.bottom_need_backward, self.layer_need_backward,
                [[layer.loss(j) for j in range(len(tops))]
                 for layer, tops in zip(self.layers, self.top_vecs)],
                [blob.capacity for blob in self.blobs_list], every_blob=self._diffs_shared,
                excluded=self._diff_aliases())
            self._diff_buffers = [None] * len(self._diff_groups)
        for index, group in enumerate(self._diff_groups):
            blobs = [self.blobs_list[blob_id] for blob_id in group]
            size = max(blob.capacity for blob in blobs)
            if self._diff_buffers[index] is None or self._diff_buffers[index].size < size:
                self._diff_buffers[index] = np.zeros(size, self.dtype) if self.device.host \
                    else SyncedMemory(self.device, size, self.dtype)
            for blob in blobs:
                blob.use_diff_buffer(self._diff_buffers[index])

    def _diff_aliases(self):
        """Blob ids that must keep the diff buffer they have: the tops and bottoms of layers whose
        tops are views of another diff (Layer.shares_diffs: Flatten, Reshape, a one-bottom
        Concat, a one-top Slice, Parameter), and those a Python layer touches (its backward may
        do anything with them)."""
        excluded = set()
        for layer, bottoms, tops in zip(self.layers, self.bottom_ids, self.top_ids):
            if layer.type == 'Python' or layer.shares_diffs():
                excluded.update(bottoms)
                excluded.update(tops)
        return excluded

    def clear_param_diffs(self):
        for blob in self.learnable_params:
            self.device.fill(blob.dev_diff, 0)

    def update(self):
        """Caffe's Net::Update: every owned learnable blob steps ``data -= diff``."""
        for blob in self.learnable_params:
            self.device.axpby(-1.0, blob.dev_diff, 1.0, blob.dev_data)

    # ------------------------------------------------------------------ lookup
    def blob_by_name(self, name):
        try:
            return self.blobs_list[self._blob_index[name]]
        except KeyError:
            raise KeyError("Unknown blob name '%s' in net '%s'" % (name, self.name)) from None

    def has_blob(self, name):
        return name in self._blob_index

    def layer_by_name(self, name):
        try:
            return self.layers[self._layer_index[name]]
        except KeyError:
            raise KeyError("Unknown layer name '%s' in net '%s'" % (name, self.name)) from None

    def has_layer(self, name):
        return name in self._layer_index
