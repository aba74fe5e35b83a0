"""The training loop every solver shares (Caffe's solver.cpp, and the parts of sgd_solver.cpp that all
six solver types inherit): net construction from the SolverParameter, Step/Solve/Test, learning rate,
gradient clipping, iter_size normalisation, weight decay, display and snapshots.

A solver type only adds its update rule (``compute_update_value``) and how many history arrays it
keeps per param. The order of one iteration is Caffe's: zero the diffs; test if due; ``on_start``
callbacks; ``iter_size`` forward/backward passes (gradients accumulate); smoothed-loss display;
``on_gradients_ready`` callbacks; ApplyUpdate (rate, lr log line, clip on the raw accumulated
gradient, then per param normalise, regularise, update rule; then ``data -= diff``); ``iter += 1``;
signal requests and periodic snapshots. Unlike Caffe, a loss that is not finite stops training at
once (before any update or snapshot), naming the iteration and the first layer whose output is not
finite.
"""
import math
import os
import time

import numpy as np
from google.protobuf import text_format

from cct import io as cct_io
from cct import rng, runtime
from cct.errors import SolverError
from cct.log import logger
from cct.proto import caffe_pb2
from cct.solver import nets as _nets
from cct.solver import snapshot as _snapshot
from cct.solver.debug_info import DebugInfo
from cct.solver.lr_policy import learning_rate
from cct.solver.nonfinite import describe_non_finite

_SOLVERS = {}


class SolverAction:
    """What a signal (or any action function) asks of a running solver (Caffe's SolverAction)."""
    NONE, STOP, SNAPSHOT = 'none', 'stop', 'snapshot'


def register_solver(type_name):
    """Class decorator: make a solver class creatable from ``type: "<type_name>"``."""
    def decorate(cls):
        if type_name in _SOLVERS:
            raise RuntimeError('solver type %r registered twice' % type_name)
        _SOLVERS[type_name] = cls
        cls.type = type_name
        return cls
    return decorate


def solver_type_list():
    """Every registered solver type, in registration order."""
    return list(_SOLVERS)


def solver_class(type_name, source='<solver>'):
    """The class registered for ``type_name``; SolverError listing the known types otherwise."""
    try:
        return _SOLVERS[type_name]
    except KeyError:
        raise SolverError('%s: Unknown solver type: %s (known types: %s)'
                          % (source, type_name, ', '.join(_SOLVERS))) from None


def cpp_float(value):
    """A number as C++'s ``ostream << float`` prints it (6 significant digits, %g)."""
    return '%g' % value


class Solver:
    """Trains a net with Caffe's loop; subclasses supply the update rule.

    Args:
        param: a solver prototxt path (read, upgraded, ``snapshot_prefix`` defaulted, as Caffe's
            ReadSolverParamsFromTextFileOrDie does) or a ``caffe_pb2.SolverParameter`` used as is.
        net: an already-built train net to use instead of the one the SolverParameter names
            (no test nets are built then; its dtype wins). cct only; ``cct time`` uses it.
        dtype: float type of the nets (float32, as Caffe; float64 for exact checks).
        source: the name error messages give the solver (default: the path, or
            '<SolverParameter>').
        devices: split each batch of the train net across these devices ('cpu,opencl:0' or a
            list; cct.parallel.HybridNet): a replica per device, the gradients summed, one update
            on the first device's weights, which the test nets (built on that device) share.
        split: with ``devices``, 'auto' (measured throughput, the default) or one fraction per
            device.

    Attributes:
        net: the train Net. test_nets: the test Nets (sharing the train net's weights).
        iter: completed updates. current_step: lr policy state (saved in snapshots).
        param: the live SolverParameter (changing ``param.base_lr`` takes effect).
        history: per learnable param (times ``history_per_param``) the update rule's state.
    """

    type = None
    history_per_param = 1

    def __init__(self, param, *, net=None, dtype=np.float32, source=None, devices=None,
                 split='auto'):
        self.dtype = np.dtype(dtype if net is None else net.dtype)
        if isinstance(param, caffe_pb2.SolverParameter):
            self.param = caffe_pb2.SolverParameter()
            self.param.CopyFrom(param)
            self.source = source or '<SolverParameter>'
        else:
            self.source = os.fspath(param)
            self.param = cct_io.read_solver_text(self.source)
        self.iter = 0
        self.current_step = 0
        self._callbacks = []
        self._action_function = None
        self._requested_early_exit = False
        self._losses, self._smoothed_loss, self._iterations_last = [], 0.0, 0
        logger.info('Initializing solver from parameters: \n%s',
                    text_format.MessageToString(self.param))
        if self.param.average_loss < 1:
            raise SolverError('%s: average_loss should be >= 1 (got %d)'
                              % (self.source, self.param.average_loss))
        self.check_param()
        self._check_snapshot_write_permissions()
        if self.param.HasField('snapshot_prefix'):
            _snapshot.remove_stale_temporaries(self.param.snapshot_prefix)
        if self.param.random_seed >= 0:
            rng.set_random_seed(self.param.random_seed + runtime.solver_rank())
        if net is not None:
            self.net, self.test_nets = net, []
        else:
            self.net = _nets.build_train_net(self.param, self.source, self.dtype,
                                             devices=devices, split=split)
            self.test_nets = _nets.build_test_nets(
                self.param, self.source, self.dtype,
                device=self.net.device if devices is not None else None)
        self._debug_info = DebugInfo(self.net) if self.param.debug_info else None
        for test_net in self.test_nets if self.param.debug_info else ():
            DebugInfo(test_net, enabled=True)
        logger.info('Solver scaffolding done.')
        params = self.net.learnable_params
        device = self.net.device
        if self.param.random_seed >= 0 and not device.host:
            device.seed(self.param.random_seed + runtime.solver_rank())
        self.history = [device.zeros(blob.shape, self.dtype)
                        for _ in range(self.history_per_param) for blob in params]

    def history_on_host(self):
        """The history arrays as host numpy arrays (for snapshots)."""
        return [self.net.device.to_host(array) for array in self.history]

    # ------------------------------------------------------------------ pycaffe surface
    @property
    def max_iter(self):
        return self.param.max_iter

    @property
    def lr(self):
        """The current learning rate. As pycaffe's (GetLearningRate), reading it may advance a
        multistep policy's current_step."""
        return self.get_learning_rate()

    def add_callback(self, on_start, on_gradients_ready):
        """Call ``on_start()`` at the start of each iteration and ``on_gradients_ready()`` once its
        gradients are accumulated, before the update."""
        self._callbacks.append((on_start, on_gradients_ready))

    def set_action_function(self, function):
        """Poll ``function()`` (returning a SolverAction) after each iteration and test batch."""
        self._action_function = function

    def share_weights(self, net):
        """Make ``net`` use the train net's weights, layer by layer (pycaffe's share_weights)."""
        net.share_with(self.net)

    # ------------------------------------------------------------------ construction
    def check_param(self):
        """Subclasses reject settings their update rule cannot use."""

    def _check_snapshot_write_permissions(self):
        if not self.param.snapshot:
            return
        if not self.param.HasField('snapshot_prefix'):
            raise SolverError('%s: In solver params, snapshot is specified but snapshot_prefix is '
                              'not' % self.source)
        probe = self.snapshot_filename('.tempfile')
        try:
            with open(probe, 'w'):
                pass
            os.remove(probe)
        except OSError:
            raise SolverError("%s: Cannot write to snapshot prefix '%s'. Make sure that the "
                              'directory exists and is writeable.'
                              % (self.source, self.param.snapshot_prefix)) from None

    # ------------------------------------------------------------------ the loop
    def _requested_action(self):
        return self._action_function() if self._action_function else SolverAction.NONE

    def step(self, iters):
        """Run ``iters`` iterations: tests, display, updates and snapshots as configured."""
        p = self.param
        start_iter, stop_iter = self.iter, self.iter + iters
        # Caffe keeps the losses in Dtype, so the displayed values round as its do.
        self._losses, self._smoothed_loss = [], self.dtype.type(0)
        self._iterations_last = self.iter
        timer_start = time.perf_counter()
        while self.iter < stop_iter:
            self.net.clear_param_diffs()
            if p.test_interval and self.iter % p.test_interval == 0 and \
                    (self.iter > 0 or p.test_initialization):
                self.test_all()
                if self._requested_early_exit:
                    break
            for on_start, _ in self._callbacks:
                on_start()
            display = p.display and self.iter % p.display == 0
            if self._debug_info is not None:
                self._debug_info.enabled = bool(display)
            loss = self.dtype.type(0)
            for _ in range(p.iter_size):
                loss += self.dtype.type(self._forward_backward_checked())
            loss /= self.dtype.type(p.iter_size)
            self._update_smoothed_loss(loss, start_iter, p.average_loss)
            if display:
                lapse = time.perf_counter() - timer_start
                per_s = (self.iter - self._iterations_last) / (lapse or 1)
                logger.info('Iteration %d (%s iter/s, %ss/%d iters), loss = %s', self.iter,
                            cpp_float(per_s), cpp_float(lapse), p.display,
                            cpp_float(self._smoothed_loss))
                timer_start = time.perf_counter()
                self._iterations_last = self.iter
                self._log_outputs(self.net, 'Train', None)
            for _, on_gradients_ready in self._callbacks:
                on_gradients_ready()
            self.apply_update()
            self.iter += 1
            request = self._requested_action()
            if (p.snapshot and self.iter % p.snapshot == 0) or request == SolverAction.SNAPSHOT:
                self.snapshot()
            if request == SolverAction.STOP:
                self._requested_early_exit = True
                break

    def solve(self, resume_file=None):
        """Train to ``max_iter`` (restoring ``resume_file`` first), snapshot, final display/test."""
        p = self.param
        logger.info('Solving %s', self.net.name)
        logger.info('Learning Rate Policy: %s', p.lr_policy)
        self._requested_early_exit = False
        if resume_file:
            logger.info('Restoring previous solver status from %s', resume_file)
            self.restore(resume_file)
        start_iter = self.iter
        self.step(p.max_iter - self.iter)
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if self._requested_early_exit:
            logger.info('Optimization stopped early.')
            return
        if p.display and self.iter % p.display == 0:
            loss = self.dtype.type(self.net.forward_from_to())
            self._update_smoothed_loss(loss, start_iter, p.average_loss)
            logger.info('Iteration %d, loss = %s', self.iter, cpp_float(self._smoothed_loss))
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        logger.info('Optimization Done.')

    def _forward_backward_checked(self):
        loss = self.net.forward_from_to()
        if not math.isfinite(loss):
            raise SolverError('Iteration %d: the loss is %s, not finite; training stopped before '
                              "this iteration's update, so the last snapshot written is still "
                              'good. %s'
                              % (self.iter, cpp_float(loss), describe_non_finite(self.net)))
        self.net.backward_from_to()
        return loss

    def _update_smoothed_loss(self, loss, start_iter, average_loss):
        if len(self._losses) < average_loss:
            self._losses.append(loss)
            size = len(self._losses)
            self._smoothed_loss = (self._smoothed_loss * (size - 1) + loss) / size
        else:
            index = (self.iter - start_iter) % average_loss
            self._smoothed_loss += (loss - self._losses[index]) / average_loss
            self._losses[index] = loss

    def _log_outputs(self, net, kind, values):
        """The ``    Train net output #k: name = v (* w = l loss)`` lines, one per element of every
        output blob (``values``: the test means, or None for the blobs' current data)."""
        index = 0
        for blob_id in net.output_blob_indices:
            name = net.blob_names[blob_id]
            weight = self.dtype.type(net.loss_weight_by_blob[blob_id])
            data = net.blobs_list[blob_id].data.ravel() if values is None else \
                values[index:index + net.blobs_list[blob_id].count]
            for value in data:
                suffix = ' (* %s = %s loss)' % (cpp_float(weight), cpp_float(weight * value)) \
                    if weight else ''
                logger.info('    %s net output #%d: %s = %s%s', kind, index, name,
                            cpp_float(value), suffix)
                index += 1

    def test_all(self):
        """Run every test net once (stopping early when a stop was requested)."""
        for test_net_id in range(len(self.test_nets)):
            if self._requested_early_exit:
                break
            self.test(test_net_id)

    def test(self, test_net_id=0):
        """Run test net ``test_net_id`` for its test_iter batches and log the mean outputs."""
        p = self.param
        logger.info('Iteration %d, Testing net (#%d)', self.iter, test_net_id)
        test_net = self.test_nets[test_net_id]
        _nets.share_trained_layers(test_net, self.net)
        scores, loss = None, self.dtype.type(0)
        for _ in range(p.test_iter[test_net_id]):
            request = self._requested_action()
            while request != SolverAction.NONE:
                if request == SolverAction.SNAPSHOT:
                    self.snapshot()
                elif request == SolverAction.STOP:
                    self._requested_early_exit = True
                request = self._requested_action()
            if self._requested_early_exit:
                break
            iter_loss = test_net.forward_from_to()
            if p.test_compute_loss:
                loss += self.dtype.type(iter_loss)
            result = [test_net.blobs_list[i].data.ravel() for i in test_net.output_blob_indices]
            result = np.concatenate(result) if result else np.zeros(0, self.dtype)
            if scores is None:
                scores = result.astype(self.dtype)
            else:
                scores += result
        if self._requested_early_exit:
            logger.info('Test interrupted.')
            return
        if p.test_compute_loss:
            loss /= self.dtype.type(p.test_iter[test_net_id])
            logger.info('Test loss: %s', cpp_float(loss))
        if scores is not None:
            self._log_outputs(test_net, 'Test', scores / self.dtype.type(p.test_iter[test_net_id]))

    # ------------------------------------------------------------------ the update
    def get_learning_rate(self):
        """The rate for the current iteration (advances current_step for step/multistep)."""
        rate, self.current_step = learning_rate(self.param, self.iter, self.current_step)
        return float(self.dtype.type(rate))

    def apply_update(self):
        """Caffe's ApplyUpdate on the gradients in the diffs: rate, clipping, then per param
        normalisation, regularisation and the update rule, then ``data -= diff``. Does not
        advance ``iter`` (``step`` does, as in Caffe)."""
        p = self.param
        rate = self.get_learning_rate()
        if p.display and self.iter % p.display == 0:
            logger.info('Iteration %d, lr = %s', self.iter, cpp_float(rate))
        self._clip_gradients()
        for param_id in range(len(self.net.learnable_params)):
            self.update_param(param_id, rate)

    def update_param(self, param_id, rate):
        """Normalise, regularise and turn learnable param ``param_id``'s gradient into its step,
        then take it (Caffe's Net::Update for that blob: ``data -= diff``)."""
        self._normalize(param_id)
        self._regularize(param_id)
        self.compute_update_value(param_id, rate)
        blob = self.net.learnable_params[param_id]
        self.net.device.axpby(-1.0, blob.dev_diff, 1.0, blob.dev_data)

    def _clip_gradients(self):
        clip = self.param.clip_gradients
        if clip < 0:
            return
        params = self.net.learnable_params
        device = self.net.device
        sumsq = sum(device.dot(b.dev_diff, b.dev_diff) for b in params)
        norm = self.dtype.type(math.sqrt(sumsq))
        if norm > clip:
            scale = self.dtype.type(clip) / norm
            logger.info('Gradient clipping: scaling down gradients (L2 norm %s > %s) by scale '
                        'factor %s', cpp_float(norm), cpp_float(clip), cpp_float(scale))
            for blob in params:
                device.scale(blob.dev_diff, scale, blob.dev_diff)

    def _normalize(self, param_id):
        if self.param.iter_size != 1:
            diff = self.net.learnable_params[param_id].dev_diff
            self.net.device.scale(diff, self.dtype.type(1.0 / self.param.iter_size), diff)

    def _regularize(self, param_id):
        blob = self.net.learnable_params[param_id]
        local_decay = self.dtype.type(self.param.weight_decay) * \
            self.dtype.type(self.net.params_weight_decay[param_id])
        if not local_decay:
            return
        kind = self.param.regularization_type
        if kind not in ('L2', 'L1'):
            raise SolverError('Unknown regularization type: %r (use "L2" or "L1")' % kind)
        self.net.device.regularize(blob.dev_data, blob.dev_diff, local_decay, kind == 'L1')

    def local_rate(self, param_id, rate):
        return self.dtype.type(rate) * self.dtype.type(self.net.params_lr[param_id])

    def compute_update_value(self, param_id, rate):
        """Turn the regularised gradient of learnable param ``param_id`` (in its diff) into the
        step ``data -= diff`` takes, updating the history."""
        raise NotImplementedError

    # ------------------------------------------------------------------ snapshots
    def snapshot_filename(self, extension):
        return '%s_iter_%d%s' % (self.param.snapshot_prefix, self.iter, extension)

    def snapshot(self):
        """Write ``<prefix>_iter_N.caffemodel`` (or ``.caffemodel.h5``) and the matching solver
        state, each atomically."""
        _snapshot.snapshot(self)

    def restore(self, state_file):
        """Load a .solverstate (or .solverstate.h5): iter, current_step, history, and the weights
        of the learned_net it names."""
        _snapshot.restore(self, os.fspath(state_file))
