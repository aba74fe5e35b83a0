"""Compute-group training on Ray (Omnivore's scheme): G groups of K workers, synchronous inside a
group, asynchronous across groups, against one parameter server.

The driver runs one thread per group. Each round the group's K workers compute gradients on their
shards from the model the server handed the group (with the answer to its previous update), and
the server applies their mean as one update to whatever model it holds by then (staleness = the
updates other groups applied meanwhile). Gradients travel from the workers to the server through
Ray's object store by reference, never through the driver. Every wait has a timeout. A worker whose process dies is restarted by Ray (max_restarts=-1); its
group recomputes that share on the same model, and the log names the lost gradient. The server is
never restarted: its death ends the run with a message naming the last snapshot, which snapshots'
atomic writes leave intact.
"""
import os
import threading
import time

import numpy as np

from cct import io as cct_io
from cct.errors import CctError
from cct.log import logger
from cct.proto import caffe_pb2
from cct.solver.solver import SolverAction
from cct.distributed import cluster
from cct.distributed.ray_actors import Replay, ServerActor, WorkerActor, failed


class ServerDiedError(CctError):
    """The parameter server's process ended; the run cannot go on."""


class GroupedTrainer:
    """Trains a solver's net with compute groups on Ray.

    Args:
        solver: a solver prototxt path or a ``caffe_pb2.SolverParameter``.
        groups: the number of compute groups G (asynchronous with each other).
        group_size: workers per group K; each reads its own shard and runs the prototxt's batch,
            so a group's update is over K batches, as Caffe's multi-GPU training does.
        ray_address: a Ray cluster to join; None starts a local Ray (or uses the one this process
            is already connected to).
        local_ray: further ``ray.init`` keyword arguments for a local Ray cct starts (e.g.
            ``{'object_store_memory': 10**9}``).
        snapshot: a .solverstate(.h5) to resume from (a grouped or a plain run's).
        worker_cpus: CPUs each worker reserves in Ray (default: 1, or an even share of the cores
            when cct starts a local Ray with more workers than cores). Fractional values let
            several workers share a core.
        group_resources: optional list of G dicts of Ray custom resources each worker of that
            group reserves (to place groups on given nodes).
        signals: an object whose ``check()`` returns a SolverAction (cct.solver.signals), polled
            while training, as plain training polls it.
        on_update: called as ``on_update(trainer, group, result)`` on the group's thread after
            every applied update (``result``: a cct.distributed.server.ApplyResult).
        timeout: seconds any single wait (a gradient, an update, a restart) may take.
        placement_timeout: seconds the actors may take to be placed and start.
        dtype: the nets' float type.
        source: the solver's name in messages (default: its path).

    Attributes (after ``run``): iteration, last_snapshot, lost (one description per gradient lost
    to a worker's death), server_pid, worker_pids (per group, per worker).
    """

    def __init__(self, solver, groups=1, group_size=1, *, ray_address=None, local_ray=None,
                 snapshot=None, worker_cpus=None, group_resources=None, signals=None,
                 on_update=None, timeout=300.0, placement_timeout=60.0, dtype=np.float32, source=None):
        if groups < 1 or group_size < 1:
            raise CctError('--groups and --group-size must be at least 1 (got %d and %d)'
                           % (groups, group_size))
        if group_resources is not None and len(group_resources) != groups:
            raise CctError('group_resources needs one dict per group (%d for %d groups)'
                           % (len(group_resources), groups))
        if isinstance(solver, caffe_pb2.SolverParameter):
            self.param = solver
            self.source = source or '<SolverParameter>'
        else:
            self.source = source or os.fspath(solver)
            self.param = cct_io.read_solver_text(self.source)
        self.groups, self.group_size = groups, group_size
        self.ray_address = ray_address
        self.local_ray = local_ray
        self.snapshot = snapshot
        self.worker_cpus = worker_cpus
        self.group_resources = group_resources
        self.signals = signals
        self.on_update = on_update
        self.timeout = timeout
        self.placement_timeout = placement_timeout
        self.dtype = np.dtype(dtype)
        self.iteration = 0
        self.last_snapshot = snapshot
        self.lost = []
        self.server_pid = None
        self.worker_pids = []
        self._stop = threading.Event()
        self._errors = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ setup
    def run(self):
        """Train to max_iter (or until a signal stops it); returns the last solver state written
        (or None)."""
        with cluster.connected(self.ray_address, self.local_ray) as started_locally:
            self.ray = cluster.import_ray()
            try:
                self._start_server()
                self._start_workers(started_locally)
                return self._train()
            finally:
                self._stop.set()
                for actor in [w for group in getattr(self, 'workers', []) for w in group] + \
                        [getattr(self, 'server', None)]:
                    if actor is not None:
                        self.ray.kill(actor, no_restart=True)

    def _get(self, ref, what, timeout=None):
        ray = self.ray
        try:
            return ray.get(ref, timeout=self.timeout if timeout is None else timeout)
        except ray.exceptions.GetTimeoutError:
            raise CctError('%s: no answer within %g s' % (what, timeout or self.timeout)) from None

    def _start_server(self):
        ray = self.ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        # The server reserves no CPU and stays on the driver's node, where the solver's relative
        # paths (test data, snapshot prefix) mean what they mean to plain training.
        actor = ray.remote(ServerActor).options(num_cpus=0, max_restarts=0,
                                                scheduling_strategy=here)
        self.server = actor.remote(os.getcwd(), logger.getEffectiveLevel())
        self.replay = Replay()
        self.server_pid, error, records = self._get(
            self.server.setup.remote(self.param.SerializeToString(), self.source, self.groups,
                                     self.group_size, self.snapshot, self.dtype.name),
            'starting the parameter server', self.placement_timeout + self.timeout)
        self.replay(records)
        if error:
            raise CctError(error)

    def _start_workers(self, started_locally):
        ray = self.ray
        count = self.groups * self.group_size
        cpus = self.worker_cpus if self.worker_cpus is not None else \
            cluster.default_worker_cpus(count, started_locally)
        demands = cluster.worker_demands(self.groups, self.group_size, cpus, self.group_resources)
        cluster.check_placement(demands, ray.available_resources(), cluster.alive_nodes(ray))
        logger.info('Placing %d compute groups of %d worker%s (%s each)', self.groups,
                    self.group_size, '' if self.group_size == 1 else 's',
                    cluster._describe(demands[0]))
        param_bytes = self.param.SerializeToString()
        self.workers = []
        for group in range(self.groups):
            members = []
            for k in range(self.group_size):
                demand = dict(demands[group * self.group_size + k])
                options = {'num_cpus': demand.pop('CPU', 0), 'max_restarts': -1,
                           'max_task_retries': 0}
                if demand:
                    options['resources'] = demand
                members.append(ray.remote(WorkerActor).options(**options).remote(
                    os.getcwd(), param_bytes, self.source, group * self.group_size + k, count,
                    self.dtype.name))
            self.workers.append(members)
        refs = [w.ready.remote() for group in self.workers for w in group]
        ready, waiting = ray.wait(refs, num_returns=len(refs), timeout=self.placement_timeout)
        if waiting:
            raise CctError('%d of %d workers were not placed and started within %g s (Ray has '
                           '%s available); check the cluster\'s resources'
                           % (len(waiting), len(refs), self.placement_timeout,
                              cluster._describe(ray.available_resources())))
        try:
            pids = ray.get(refs, timeout=self.timeout)
        except ray.exceptions.RayError as e:
            raise CctError('a worker failed to start: %s' % _cause(e)) from None
        self.worker_pids = [pids[g * self.group_size:(g + 1) * self.group_size]
                            for g in range(self.groups)]
        if self.snapshot and count == 1:
            # One worker resumes its data where the snapshot's run stopped (plain training's exact
            # resume); a restarted worker does not, as it is not its constructor that does this.
            iteration, _, _ = self._get(self.server.status.remote(), 'the server status')
            try:
                self._get(self.workers[0][0].resume.remote(self.snapshot, iteration),
                          'the worker resuming its data')
            except ray.exceptions.RayError as e:
                raise CctError('the worker could not resume: %s' % _cause(e)) from None

    # ------------------------------------------------------------------ training
    def _train(self):
        self._server_call(self.server.start.remote(), 'starting the parameter server')
        threads = [threading.Thread(target=self._group_loop, args=(group,), daemon=True,
                                    name='cct-group-%d' % group) for group in range(self.groups)]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(0.05)
            action = self.signals.check() if self.signals else SolverAction.NONE
            if action != SolverAction.NONE and not self._stop.is_set():
                self._stopped_by_signal |= action == SolverAction.STOP
                snapshot = self._server_call(self.server.request.remote(action),
                                             'asking the server for a %s' % action)
                if snapshot:
                    self.last_snapshot = snapshot
            if self._errors:
                self._stop.set()
                raise self._errors[0]
        if self._errors:
            raise self._errors[0]
        final_loss = None
        iteration, _, _ = self._get(self.server.status.remote(), 'the parameter server status')
        p = self.param
        if p.display and iteration % p.display == 0 and not self._stopped_by_signal:
            model = self.server.model.remote()
            losses = self._get([w.forward_loss.remote(model) for w in self.workers[0]],
                               'the final loss of group 0')
            dtype = self.dtype.type
            final_loss = float(sum(dtype(v) for v in losses) / dtype(len(losses)))
        last = self._server_call(self.server.finish.remote(final_loss), 'finishing training')
        self.iteration = iteration
        self.last_snapshot = last or self.last_snapshot
        return self.last_snapshot

    _stopped_by_signal = False

    def _server_call(self, ref, what):
        ray = self.ray
        try:
            value, records = self._get(ref, what)
        except ray.exceptions.RayActorError as e:
            raise self._server_died(e) from None
        self.replay(records)
        message = failed(value)
        if message:
            raise CctError(message)
        return value

    def _server_died(self, error):
        where = 'the last snapshot, %s, is intact (resume with --snapshot %s)' % (
            self.last_snapshot, self.last_snapshot) if self.last_snapshot else \
            'no snapshot had been written'
        return ServerDiedError('the parameter server died (%s); training stopped after iteration '
                               '%d (the last update it confirmed); %s'
                               % (_first_line(error), self.iteration, where))

    def _server_alive(self):
        try:
            self.ray.get(self.server.status.remote(), timeout=30)
            return True
        except self.ray.exceptions.RayError:
            return False

    def _group_loop(self, group):
        # Any failure (a user error, or an unexpected one from Ray) ends the whole run: it is
        # raised again on the driver's main thread, so no group dies silently.
        try:
            model = self.server.model.remote()
            while not self._stop.is_set():
                done, model = self._round(group, model)
                if done:
                    return
        except Exception as e:  # noqa: BLE001
            with self._lock:
                if not self._stop.is_set():
                    self._errors.append(e)
                self._stop.set()

    def _round(self, group, model):
        """One update of ``group`` from ``model`` (a reference); returns (True when training is
        over, the reference to the model to compute on next)."""
        ray = self.ray
        workers = self.workers[group]
        calls = [w.compute.options(num_returns=2).remote(model) for w in workers]
        metas = []
        for k, worker in enumerate(workers):
            meta_ref, gradient_ref = calls[k]
            while True:
                try:
                    metas.append(self._get(meta_ref, 'group %d worker %d' % (group, k)))
                    break
                except ray.exceptions.RayActorError as e:
                    if self._stop.is_set():
                        return True, None
                    if not self._server_alive():
                        raise self._server_died(e) from None
                    meta_ref, gradient_ref = self._replace(group, k, worker, model, e)
                    calls[k] = (meta_ref, gradient_ref)
                except ray.exceptions.RayTaskError as e:
                    raise CctError('group %d worker %d: %s' % (group, k, _cause(e))) from None
        version = metas[0].version
        # The answer comes with the model as the update left it, saving the group one call to
        # the server per update (Omnivore's groups ask for the model right after their update).
        answer, model = self.server.apply.options(num_returns=2).remote(
            group, metas, *[c[1] for c in calls])
        try:
            result = self._server_call(answer, 'the server applying group %d\'s gradient' % group)
        except ray.exceptions.RayTaskError as e:
            raise CctError('group %d: %s' % (group, _cause(e))) from None
        with self._lock:
            self.iteration = max(self.iteration, result.iteration)
            if result.snapshot:
                self.last_snapshot = result.snapshot
        if not result.applied:
            logger.info('Group %d: its gradient on the model of iteration %d arrived after '
                        'training ended and was not applied', group, version)
            return True, None
        if self.on_update is not None:
            self.on_update(self, group, result)
        return result.done, model

    def _replace(self, group, k, worker, model, error):
        """A worker died: wait for Ray to restart it, log what was lost, and resubmit its share
        of the same model. Returns the new (meta, gradient) references."""
        ray = self.ray
        deadline = time.monotonic() + self.timeout
        old_pid = self.worker_pids[group][k]
        while True:
            try:
                pid = ray.get(worker.ready.remote(), timeout=max(1.0, deadline - time.monotonic()))
                break
            except ray.exceptions.RayActorError:
                if time.monotonic() > deadline:
                    raise CctError('group %d worker %d died and Ray did not restart it within %g s'
                                   % (group, k, self.timeout)) from None
                time.sleep(0.5)
            except ray.exceptions.GetTimeoutError:
                raise CctError('group %d worker %d died and Ray did not restart it within %g s'
                               % (group, k, self.timeout)) from None
        self.worker_pids[group][k] = pid
        description = ('worker %d (pid %s) died (%s): its in-flight gradient was lost; '
                       'Ray restarted it as pid %s, its data shard starts again from its first '
                       'record, and it computes its share again on the same model'
                       % (k, old_pid, _first_line(error), pid))
        with self._lock:
            self.lost.append('group %d %s' % (group, description))
        logger.warning('Group %d: %s', group, description)
        return worker.compute.options(num_returns=2).remote(model)


def _cause(error):
    cause = getattr(error, 'cause', None)
    return '%s' % cause if cause is not None else _first_line(error)


def _first_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def train_grouped(solver, groups=1, group_size=1, **kwargs):
    """Train ``solver`` with ``groups`` compute groups of ``group_size`` workers on Ray; see
    GroupedTrainer for the keyword arguments. Returns the GroupedTrainer after its run."""
    trainer = GroupedTrainer(solver, groups, group_size, **kwargs)
    trainer.run()
    return trainer
