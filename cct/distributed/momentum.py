"""Asynchrony begets momentum (Mitliagkas et al., arXiv:1605.09774): the implicit momentum of
asynchronous SGD, measured on a quadratic and on a net, and the explicit momentum that compensates
for it (``--momentum-mode auto``).

The theory: M workers whose compute times are memoryless apply gradients whose staleness τ is
geometric, P(τ = l) = (1 − q)·q^l with q = 1 − 1/M. Then, in expectation over the staleness,

    E[w_{t+1} − w_t] = (1 − 1/M)·E[w_t − w_{t−1}] − (α/M)·E[∇f(w_t)],

heavy-ball momentum 1 − 1/M with step α/M. With explicit momentum μ_e on top the expected
recursion is D_t = (μ_e + q)·D_{t−1} − μ_e·q·D_{t−2} − (α/M)·∇f(w_t) (D_t = E[w_{t+1} − w_t]), so to
first order the total momentum is μ_e + 1 − 1/M, which ``compensated_momentum`` keeps at the solver
file's value. Only to first order: the recursion is two low-pass filters in series (poles μ_e and
q), whose long-run step α/(M·(1 − μ_e)(1 − q)) = α/(1 − μ_e) does not depend on M. So where the
step is large enough for momentum to shape the curve, compensation keeps G groups' per-update loss
curves near one group's (uncompensated, μ_e + q > 1 overshoots); at small rates asynchrony is
only a delay, the uncompensated curves already coincide, and compensation (a smaller μ_e, so a
smaller long-run step) slows them (tests/distributed/test_momentum.py,
benchmarks/momentum_compensation.py, the README's table).

The estimator (``fit_momentum``): run the same start many times with independent compute times,
average the model over runs (m_t) and the gradient at the model each update read (g_t, which is
the gradient at m_t in expectation), and fit μ and η by least squares over every coordinate and
every update after a burn-in of the first updates (whose staleness is not yet geometric: all
workers start on the same model):

    m_{t+1} − m_t = μ·(m_t − m_{t−1}) − η·g_t.
"""
import numpy as np

from cct.errors import CctError
from cct.log import logger

#: Solver types whose ``momentum`` is heavy-ball momentum, the one asynchrony adds to.
MOMENTUM_SOLVERS = ('SGD', 'Nesterov')


def implicit_momentum(workers):
    """The theory's implicit momentum of ``workers`` asynchronous workers: 1 − 1/M."""
    return 1.0 - 1.0 / workers


def compensated_momentum(target, groups):
    """The explicit momentum that brings ``groups`` asynchronous groups' total momentum to
    ``target``: target − (1 − 1/G); negative when asynchrony alone exceeds the target."""
    return target - implicit_momentum(groups)


def set_momentum_mode(param, groups, mode, source='the solver'):
    """Apply ``--momentum-mode`` to ``param`` (a SolverParameter) for ``groups`` compute groups.

    ``explicit`` keeps the solver file's momentum; ``auto`` replaces it by
    ``compensated_momentum(momentum, groups)`` and logs the value used. Returns the momentum.
    """
    if mode == 'explicit':
        return param.momentum
    if mode != 'auto':
        raise CctError('--momentum-mode must be explicit or auto (got %r)' % mode)
    kind = param.type or 'SGD'
    if kind not in MOMENTUM_SOLVERS:
        raise CctError('%s: --momentum-mode auto compensates heavy-ball momentum, which solver '
                       'type %s does not have (use SGD or Nesterov)' % (source, kind))
    target = param.momentum
    param.momentum = compensated_momentum(target, groups)
    logger.info('Momentum compensation (--momentum-mode auto): explicit momentum %g = %g - '
                '(1 - 1/%d) for %d compute group%s (the solver file\'s %g is the target total)',
                param.momentum, target, groups, groups, '' if groups == 1 else 's', target)
    return param.momentum


def fit_momentum(models, gradients, burn_in):
    """Least-squares fit of m_{t+1} − m_t = μ·(m_t − m_{t−1}) − η·g_t.

    Args:
        models: (T + 1, P) the run-averaged model after each update (row 0: the start).
        gradients: (T + 1, P) the run-averaged gradient at each of those models (scaled by each
            coordinate's learning-rate multiplier, so one η fits every coordinate).
        burn_in: updates skipped at the start.

    Returns:
        ``(mu, eta)``.
    """
    models = np.asarray(models, np.float64)
    gradients = np.asarray(gradients, np.float64)
    steps = np.diff(models, axis=0)
    if len(steps) < burn_in + 3:
        raise CctError('fitting the momentum needs more than %d updates (got %d)'
                       % (burn_in + 2, len(steps)))
    target = steps[burn_in + 1:].ravel()
    design = np.stack([steps[burn_in:-1].ravel(), gradients[burn_in + 1:-1].ravel()], axis=1)
    (mu, minus_eta), *_ = np.linalg.lstsq(design, target, rcond=None)
    return float(mu), float(-minus_eta)


def compensation_spread(groups=(1, 2, 4, 8), *, mode='auto', target=0.9, base_lr=0.01,
                        runs=500, updates=300, seed=0):
    """How far the quadratic's mean loss curves (per update) of ``groups`` lie from the first
    one's: the mean |log L_G(t) − log L_1(t)| for each further G, with the explicit momentum
    ``target`` (``explicit``) or compensated (``auto``). Returns {G: spread}."""
    curves = {}
    for g in groups:
        momentum = compensated_momentum(target, g) if mode == 'auto' else target
        curves[g] = quadratic_runs(g, runs=runs, updates=updates, dim=8, base_lr=base_lr,
                                   momentum=momentum, noise=0.1, seed=seed)[2]
    base = np.log(curves[groups[0]])
    with np.errstate(over='ignore', invalid='ignore'):
        return {g: float(np.mean(np.abs(np.log(curves[g]) - base))) for g in groups[1:]}


def quadratic_runs(workers, *, runs=2000, updates=None, dim=4, base_lr=0.02, momentum=0.0,
                   noise=0.0, seed=0):
    """Asynchronous SGD on f(w) = ½·Σ c_i·w_i² (curvatures c from 0.2 to 1), ``runs``
    independent runs at once: ``workers`` workers each read the model, take an exponential time
    (mean 1), and the server applies their gradient (plus Gaussian noise of std ``noise``) with
    Caffe's SGD rule (v ← momentum·v + lr·g; w ← w − v) in the order they finish.

    Returns:
        ``(models, gradients, losses)``: the run-averaged model (updates + 1, dim), the gradient
        at it (the gradient is linear, so the mean gradient is c·m_t) and the
        run-averaged loss after each update (updates + 1,).
    """
    if workers < 1:
        raise CctError('the number of workers must be at least 1 (got %d)' % workers)
    rng = np.random.default_rng(seed)
    updates = 40 * workers + 40 if updates is None else updates
    curvature = np.geomspace(0.2, 1.0, dim)
    weights = np.ones((runs, dim))
    history = np.zeros((runs, dim))
    read = np.repeat((curvature * weights)[:, None, :], workers, axis=1) + \
        noise * rng.standard_normal((runs, workers, dim))
    finish = rng.exponential(1.0, (runs, workers))
    rows = np.arange(runs)
    models, losses = [weights.mean(0)], [float((0.5 * curvature * weights ** 2).sum(1).mean())]
    for _ in range(updates):
        first = finish.argmin(axis=1)
        history = momentum * history + base_lr * read[rows, first]
        weights = weights - history
        read[rows, first] = curvature * weights + noise * rng.standard_normal((runs, dim))
        finish[rows, first] += rng.exponential(1.0, runs)
        models.append(weights.mean(0))
        losses.append(float((0.5 * curvature * weights ** 2).sum(1).mean()))
    models = np.array(models)
    return models, models * curvature, np.array(losses)


def measure_quadratic(workers, *, runs=2000, seed=0):
    """The measured implicit momentum of ``workers`` asynchronous workers running plain SGD on
    the quadratic; returns ``(mu, eta)``."""
    models, gradients, _ = quadratic_runs(workers, runs=runs, seed=seed)
    return fit_momentum(models, gradients, burn_in=2 * workers)


class NetTrajectory:
    """Accumulates, over simulated runs of a net, the model after each update and the gradient a
    group computed on it, on a fixed random sample of coordinates (a linear map, so averages
    commute with it); ``fit`` then runs the estimator.

    Args:
        sizes: the element count of each learnable param.
        lr_mults: each param's learning-rate multiplier.
        updates: updates recorded per run.
        coordinates: how many coordinates are sampled.
        seed: the sample's seed.
    """

    def __init__(self, sizes, lr_mults, updates, coordinates=4096, seed=0):
        total = int(sum(sizes))
        rng = np.random.default_rng(seed)
        self.index = np.sort(rng.choice(total, size=min(coordinates, total), replace=False))
        self.scale = np.repeat(np.asarray(lr_mults, np.float64), sizes)[self.index]
        self.updates = updates
        self.models = np.zeros((updates + 1, len(self.index)))
        self.gradients = np.zeros_like(self.models)
        self.runs = 0
        self._current = {}

    def start_run(self):
        """Start a new run."""
        self._current = {}

    def record(self, version, weights, gradients):
        """Called by the simulator when a group computed ``gradients`` on the model of
        ``version`` (``weights``); the first record of each version in a run counts."""
        if version > self.updates or version in self._current:
            return
        self._current[version] = (
            np.concatenate([np.ravel(w) for w in weights])[self.index],
            np.concatenate([np.ravel(g) for g in gradients])[self.index] * self.scale)

    def end_run(self):
        """Add the run's records to the averages."""
        missing = [v for v in range(self.updates + 1) if v not in self._current]
        if missing:
            raise CctError('the run recorded no model for update %d (it stopped after %d '
                           'updates)' % (missing[0], max(self._current, default=-1)))
        for version, (model, gradient) in self._current.items():
            self.models[version] += model
            self.gradients[version] += gradient
        self.runs += 1

    def fit(self, burn_in):
        runs = max(self.runs, 1)
        return fit_momentum(self.models / runs, self.gradients / runs, burn_in)


def measure_net(param, source, workers, *, runs=8, updates=None, base_lr=None, seed=0,
                coordinates=4096):
    """The measured implicit momentum of ``workers`` asynchronous groups training a net: the
    simulator (real gradients, the ParameterServer's update) with memoryless compute times,
    ``runs`` runs from the same initial model and data order differing only in the compute
    times, plain SGD (momentum 0, no weight decay, a fixed rate) so that any momentum fitted is
    asynchrony's. Returns ``(mu, eta, net_name)``."""
    from cct.distributed.cluster_spec import ClusterSpec
    from cct.distributed.simulator import Simulation, quiet
    from cct.proto import caffe_pb2
    copy = caffe_pb2.SolverParameter()
    copy.CopyFrom(param)
    copy.type = 'SGD'
    copy.momentum = 0.0
    copy.weight_decay = 0.0
    copy.lr_policy = 'fixed'
    copy.display = 0
    copy.clip_gradients = -1
    if base_lr is not None:
        copy.base_lr = base_lr
    updates = 2 * workers + 30 if updates is None else updates
    copy.max_iter = updates + 1  # the gradient at the last recorded model is computed too
    cluster = ClusterSpec({'machines': [{'count': workers, 'images_per_second': 1000.0}],
                           'network': {'gbps': 1e6, 'latency_ms': 0.0}, 'jitter': 'exponential'},
                          'memoryless workers')
    trajectory, name = None, 'net'
    for run in range(runs):
        with quiet():
            simulation = Simulation(copy, source, cluster, workers, seed=seed + run,
                                    test_interval=0)
            if trajectory is None:
                net = simulation.server.solver.net
                name = net.name or name
                trajectory = NetTrajectory([b.count for b in net.learnable_params],
                                           net.params_lr, updates, coordinates, seed)
            trajectory.start_run()
            simulation.observer = trajectory.record
            result = simulation.run()
        if result.diverged:
            raise CctError('%s: the net diverged at rate %g with %d workers; give a smaller '
                           '--base-lr' % (source, copy.base_lr, workers))
        trajectory.end_run()
    mu, eta = trajectory.fit(burn_in=2 * workers)
    return mu, eta, name
