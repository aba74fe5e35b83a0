"""The accelerators' RNG fills and solver updates (a mixin of AcceleratorDevice): the counter-based
generator of rng.cl and the per-element updates of update.cl."""
import numpy as np

from cct.errors import DeviceError

RULES = {'nesterov': 0, 'adagrad': 1, 'rmsprop': 2, 'adadelta': 3, 'adam': 4, 'momentum': 5}
GOLDEN = 0x9E3779B97F4A7C15
MASK64 = (1 << 64) - 1


def _i(value):
    return np.int32(value)


class UpdatesMixin:
    """seed, rng_*, dropout's mask and the solver updates; needs AcceleratorDevice's helpers."""

    # ---------------------------------------------------------------- RNG
    def seed(self, seed):
        # Distinct seeds give unrelated streams: the seed is spread by the golden-ratio step.
        self._seed = (int(seed) * GOLDEN + 1) & MASK64
        self._counter = 0

    def _draws(self, count):
        """(seed, first counter) for ``count`` draws, and advance the stream past them."""
        first = self._counter
        self._counter = (self._counter + count) & MASK64
        return np.uint64(self._seed), np.uint64(first)

    def rng_uniform(self, out, low, high):
        self._run('rng', 'rng_uniform', out.dtype, out.size, _i(out.size),
                  *self._draws(out.size), self._real(out.dtype, low),
                  self._real(out.dtype, high), *self.arg(out))

    def rng_gaussian(self, out, mean, std):
        self._run('rng', 'rng_gaussian', out.dtype, out.size, _i(out.size),
                  *self._draws(2 * out.size), self._real(out.dtype, mean),
                  self._real(out.dtype, std), *self.arg(out))

    def dropout_mask(self, mask, ratio):
        self._run('rng', 'rng_bernoulli_mask', np.float32, mask.size, _i(mask.size),
                  *self._draws(mask.size), np.float32(ratio), *self.arg(mask))

    # ---------------------------------------------------------------- solver updates
    def sgd_update(self, data, diff, history, normalize, decay, l1, rate, momentum):
        real = data.dtype.type
        self._run('update', 'sgd_update', data.dtype, data.size, _i(data.size), *self.arg(data),
                  *self.arg(diff), *self.arg(history), real(normalize), real(decay), _i(bool(l1)),
                  real(rate), real(momentum))

    def regularize(self, data, diff, decay, l1):
        self._run('update', 'regularize', diff.dtype, diff.size, _i(diff.size), *self.arg(data),
                  *self.arg(diff), self._real(diff.dtype, decay), _i(bool(l1)))

    def adaptive_update(self, rule, diff, history, history2, rate, momentum, momentum2, delta,
                        correction=1.0):
        if rule not in RULES:
            raise DeviceError('unknown update rule %r (rules: %s)' % (rule, ', '.join(RULES)))
        if history2 is None:
            if rule in ('adadelta', 'adam'):
                raise DeviceError('update rule %r needs a second history' % rule)
            history2 = history
        real = diff.dtype.type
        self._run('update', 'adaptive_update', diff.dtype, diff.size, _i(RULES[rule]),
                  _i(diff.size), *self.arg(diff), *self.arg(history), *self.arg(history2),
                  real(rate), real(momentum), real(momentum2), real(delta), real(correction))
