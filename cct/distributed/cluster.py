"""Ray for compute groups: starting a local Ray or joining a cluster, and checking a group layout
against the cluster's resources before any actor is created.

Ray waits forever for resources it does not have (an actor asking for a CPU the cluster lacks is
never placed), so every layout is checked up front, in total and per node, and refused with what is
missing; actors that still are not placed within a timeout are reported the same way.
"""
import contextlib
import math
import os

from cct.errors import CctError, MissingPackageError, install_hint
from cct.log import logger

# Ray's own bookkeeping entries of cluster_resources(), not resources a worker asks for.
_IGNORED = ('memory', 'object_store_memory')


def import_ray():
    try:
        import ray
    except ImportError:
        raise MissingPackageError('compute groups run on Ray, which is not installed: %s'
                                  % install_hint('distributed', 'ray>=2.59')) from None
    return ray


def usable_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()


@contextlib.contextmanager
def connected(address=None, local_options=None):
    """Use the Ray this process is already connected to, else join ``address`` (or
    ``$RAY_ADDRESS``, as Ray's own tools do), else start a new local Ray sized to this machine
    (all its cores, Ray's default object store; ``local_options`` are further ``ray.init``
    arguments for it, e.g. ``object_store_memory``). Yields True when cct started the local Ray
    itself; what cct started or joined it leaves at the end.

    Token authentication is left as Ray sets it (on by default); cct never turns it off.
    """
    ray = import_ray()
    if os.environ.get('RAY_AUTH_MODE', '').lower() == 'disabled':
        logger.warning('RAY_AUTH_MODE=disabled is set in the environment: this Ray cluster '
                       'accepts unauthenticated clients')
    if ray.is_initialized():
        yield False
        return
    address = address or os.environ.get('RAY_ADDRESS') or None
    try:
        if address:
            logger.info('Joining the Ray cluster at %s', address)
            ray.init(address=address, log_to_driver=False)
        else:
            logger.info('Starting a local Ray with %d CPUs', usable_cores())
            # 'local': a new Ray of cct's own, never one some other program started on this
            # machine (which ray.init() without an address would join).
            options = dict(address='local', num_cpus=usable_cores(), include_dashboard=False,
                           log_to_driver=False)
            options.update(local_options or {})
            ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise CctError('cannot %s: %s' % ('join the Ray cluster at %s' % address if address
                                          else 'start a local Ray', e)) from None
    try:
        yield not address
    finally:
        ray.shutdown()


def default_worker_cpus(workers, started_locally):
    """CPUs each worker reserves: one, or an even share of this machine's cores when cct started
    the local Ray and there are more workers than cores (Ray then runs them side by side, one
    thread each)."""
    if started_locally and workers > usable_cores():
        return math.floor(usable_cores() / workers * 10000) / 10000
    return 1.0


def worker_demands(groups, group_size, worker_cpus, group_resources=None):
    """One resource dict per worker, group by group."""
    demands = []
    for group in range(groups):
        extra = dict(group_resources[group]) if group_resources else {}
        for _ in range(group_size):
            demand = {'CPU': worker_cpus} if worker_cpus else {}
            demand.update(extra)
            demands.append(demand)
    return demands


def check_placement(demands, available, nodes):
    """Refuse a layout the cluster cannot hold, naming what is missing.

    Args:
        demands: one resource dict per worker.
        available: ``ray.available_resources()``.
        nodes: the alive nodes' total resources (dicts), from ``ray.nodes()``.

    Raises:
        CctError: in total or on any single node, the workers do not fit.
    """
    total = {}
    for demand in demands:
        for name, amount in demand.items():
            total[name] = total.get(name, 0) + amount
    missing = ['%s: %g needed, %g available' % (name, amount, available.get(name, 0))
               for name, amount in sorted(total.items())
               if amount > available.get(name, 0) + 1e-9]
    if missing:
        raise CctError('the Ray cluster cannot hold %d workers (%s); missing %s. Use fewer '
                       'groups or a smaller --group-size, reserve less per worker '
                       '(--worker-cpus), or add nodes'
                       % (len(demands), _describe(total), '; '.join(missing)))
    free = [{k: v for k, v in node.items() if k not in _IGNORED} for node in nodes]
    for index, demand in enumerate(demands):
        for node in free:
            if all(node.get(name, 0) + 1e-9 >= amount for name, amount in demand.items()):
                for name, amount in demand.items():
                    node[name] -= amount
                break
        else:
            raise CctError('no Ray node can hold worker %d (it needs %s; the nodes have %s)'
                           % (index, _describe(demand),
                              ' | '.join(_describe(node) for node in nodes) or 'none'))


def _describe(resources):
    return ', '.join('%s %g' % (name, amount) for name, amount in sorted(resources.items())
                     if name not in _IGNORED and not name.startswith('node:')) or 'nothing'


def alive_nodes(ray):
    return [node['Resources'] for node in ray.nodes() if node.get('Alive')]
