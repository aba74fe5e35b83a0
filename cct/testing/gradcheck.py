"""The one numerical gradient checker every layer test uses (Caffe's test_gradient_check_util.hpp).

Semantics are Caffe's: central differences with ``stepsize``; the analytic and numeric gradients must
agree within ``threshold * max(|analytic|, |numeric|, 1)``; points within ``kink_range`` of ``kink``
are skipped (non-differentiable points such as ReLU's 0). The objective is half the sum of squares of
all tops (so each top's diff is its data), or one chosen top element. Layers are run in float64, the
random seed is reset before every forward (so Dropout draws the same mask; an accelerator's
generator too), and the bottoms are restored before every forward, which makes in-place layers
checkable. Values are read and written through the blobs' host views, so a layer on any device
can be checked. Param blobs are checked unless
the layer's ``param_propagate_down`` says their gradient is not wanted.

``directional=True`` checks one scalar per random direction, <analytic gradient, v> against the finite
difference along v (Chainer's and autograd's dot-product test): its cost does not grow with the blob,
so it covers layers at realistic sizes.
"""
import numpy as np

from cct import rng


class GradientCheckError(AssertionError):
    """An analytic gradient that disagrees with the finite-difference estimate."""


class GradientChecker:
    """Caffe's GradientChecker.

    Args:
        stepsize: finite-difference step.
        threshold: relative tolerance (scaled by max(|a|, |b|, 1)).
        seed: random seed set before every forward.
        kink: a non-differentiable input value to stay away from.
        kink_range: half-width of the skipped interval around ``kink`` (negative: skip nothing).
    """

    def __init__(self, stepsize=1e-2, threshold=1e-3, seed=1701, kink=0.0, kink_range=-1.0):
        self.stepsize = stepsize
        self.threshold = threshold
        self.seed = seed
        self.kink = kink
        self.kink_range = kink_range

    # --------------------------------------------------------------- plumbing
    def _targets(self, layer, bottom, check_bottom):
        """The blobs to check (params first, then the chosen bottoms) and propagate_down."""
        if check_bottom is None:
            chosen = list(range(len(bottom)))
        elif isinstance(check_bottom, int):
            chosen = [] if check_bottom < 0 else [check_bottom]
        else:
            chosen = list(check_bottom)
        propagate_down = [i in chosen for i in range(len(bottom))]
        # A param blob whose gradient the layer is told not to compute (lr_mult 0 in a net, such
        # as BatchNorm's statistics) is not a target; every other one is, as in Caffe.
        wanted = list(getattr(layer, 'param_propagate_down', [])) + [True] * len(layer.blobs)
        targets = [('param blob %d' % i, blob) for i, blob in enumerate(layer.blobs)
                   if wanted[i]]
        targets += [('bottom %d' % i, bottom[i]) for i in chosen]
        return targets, propagate_down

    def _objective(self, top, top_id, top_index):
        """Caffe's GetObjAndGradient: sets the top diffs and returns the objective."""
        if top_id is None:
            loss = 0.0
            for blob in _unique(top):
                loss += float(np.dot(blob.data.ravel(), blob.data.ravel()))
                blob.diff[...] = blob.data
            return loss / 2.0
        for blob in top:
            blob.diff[...] = 0
        weight = 2.0
        top[top_id].diff.reshape(-1)[top_index] = weight
        return float(top[top_id].data.reshape(-1)[top_index]) * weight

    def _forward(self, layer, bottom, top, originals):
        for blob, values in zip(bottom, originals):
            blob.data[...] = values
        rng.set_random_seed(self.seed)
        device = getattr(layer, 'device', None)
        if device is not None and not device.host:
            device.seed(self.seed)
        layer.reshape(bottom, top)
        layer.forward(bottom, top)

    def _analytic(self, layer, bottom, top, targets, propagate_down, originals, top_id, top_index):
        for blob in layer.blobs:
            blob.diff[...] = 0
        self._forward(layer, bottom, top, originals)
        self._objective(top, top_id, top_index)
        layer.backward(top, propagate_down, bottom)
        return [blob.diff.copy() for _, blob in targets]

    def _evaluate(self, layer, bottom, top, originals, top_id, top_index):
        self._forward(layer, bottom, top, originals)
        return self._objective(top, top_id, top_index)

    def _compare(self, layer, what, index, value, analytic, numeric):
        if value is not None and self.kink - self.kink_range <= abs(value) <= \
                self.kink + self.kink_range:
            return
        scale = max(abs(analytic), abs(numeric), 1.0)
        if abs(analytic - numeric) > self.threshold * scale:
            raise GradientCheckError(
                '%s: %s, element %s (value %s): analytic gradient %.8g, numeric %.8g '
                '(difference %.3g > tolerance %.3g)' % (
                    layer.describe(), what, index, 'n/a' if value is None else '%.6g' % value,
                    analytic, numeric,
                    abs(analytic - numeric), self.threshold * scale))

    # --------------------------------------------------------------- checks
    def check(self, layer, bottom, top, check_bottom=None, top_id=None, top_index=0,
              elementwise=False):
        """Check every element of the params and chosen bottoms against finite differences.

        Args:
            layer, bottom, top: a set-up layer and its blobs (see ``cct.testing.make_layer``).
            check_bottom: None for all bottoms, an index, a list, or -1 for params only.
            top_id, top_index: use one top element as the objective instead of the sum of squares.
            elementwise: only element i of a bottom affects top element i (Caffe's eltwise check).
        """
        targets, propagate_down = self._targets(layer, bottom, check_bottom)
        originals = [blob.data.copy() for blob in bottom]
        analytic = self._analytic(layer, bottom, top, targets, propagate_down, originals,
                                  top_id, top_index)
        for (what, blob), computed in zip(targets, analytic):
            is_bottom = what.startswith('bottom')
            def values():
                # A param's host view is asked for anew before each write: on an accelerator
                # that is what sends the write to the device (Caffe's SyncedMemory).
                return originals[int(what.split()[1])].reshape(-1) if is_bottom else \
                    blob.data.reshape(-1)
            for i in range(blob.count):
                value = values()[i]
                index = tuple(int(j) for j in np.unravel_index(i, blob.shape))
                if elementwise and top_id is not None and i != top_index:
                    # Caffe's element-wise shortcut: top element i depends on bottom element i
                    # alone, so every other analytic gradient must be 0 (a leak fails here).
                    self._compare(layer, what, index, value, float(computed.reshape(-1)[i]), 0.0)
                    continue
                values()[i] = value + self.stepsize
                plus = self._evaluate(layer, bottom, top, originals, top_id, top_index)
                values()[i] = value - self.stepsize
                minus = self._evaluate(layer, bottom, top, originals, top_id, top_index)
                values()[i] = value
                numeric = (plus - minus) / (2.0 * self.stepsize)
                self._compare(layer, what, index, value, float(computed.reshape(-1)[i]), numeric)
        self._forward(layer, bottom, top, originals)
        _restore(bottom, originals)

    def check_exhaustive(self, layer, bottom, top, check_bottom=None):
        """Caffe's CheckGradientExhaustive: every top element in turn is the objective."""
        originals = [blob.data.copy() for blob in bottom]
        self._forward(layer, bottom, top, originals)
        _restore(bottom, originals)
        for top_id, blob in enumerate(top):
            for top_index in range(blob.count):
                self.check(layer, bottom, top, check_bottom, top_id, top_index)

    def check_eltwise(self, layer, bottom, top):
        """Caffe's CheckGradientEltwise: top element i depends only on bottom element i.

        As in Caffe, the layer must have no parameter blobs and every bottom must have as many
        elements as each top.
        """
        if len(layer.blobs):
            raise ValueError('%s: check_eltwise needs a layer without parameter blobs (it has %d)'
                             % (layer.describe(), len(layer.blobs)))
        for t in top:
            for i, blob in enumerate(bottom):
                if blob.count != t.count:
                    raise ValueError('%s: check_eltwise needs bottoms and tops of one count '
                                     '(bottom %d has %d, a top %d)'
                                     % (layer.describe(), i, blob.count, t.count))
        originals = [blob.data.copy() for blob in bottom]
        self._forward(layer, bottom, top, originals)
        _restore(bottom, originals)
        for top_id, blob in enumerate(top):
            for top_index in range(blob.count):
                self.check(layer, bottom, top, None, top_id, top_index, elementwise=True)

    def check_directional(self, layer, bottom, top, check_bottom=None, directions=3, seed=0):
        """Dot-product test along random unit directions; cost independent of blob sizes."""
        targets, propagate_down = self._targets(layer, bottom, check_bottom)
        originals = [blob.data.copy() for blob in bottom]
        analytic = self._analytic(layer, bottom, top, targets, propagate_down, originals, None, 0)
        params = [blob.data.copy() for blob in layer.blobs]
        gen = np.random.default_rng(seed)
        for d in range(directions):
            vs = [gen.standard_normal(blob.shape) for _, blob in targets]
            norm = np.sqrt(sum(float((v * v).sum()) for v in vs)) or 1.0
            vs = [v / norm for v in vs]
            predicted = sum(float((g * v).sum()) for g, v in zip(analytic, vs))

            def shifted(sign):
                for (what, blob), v in zip(targets, vs):
                    if what.startswith('bottom'):
                        k = int(what.split()[1])
                        originals[k] += sign * self.stepsize * v
                    else:
                        blob.data[...] += sign * self.stepsize * v
                value = self._evaluate(layer, bottom, top, originals, None, 0)
                for (what, blob), v in zip(targets, vs):
                    if what.startswith('bottom'):
                        originals[int(what.split()[1])] -= sign * self.stepsize * v
                for blob, saved in zip(layer.blobs, params):
                    blob.data[...] = saved
                return value
            numeric = (shifted(1.0) - shifted(-1.0)) / (2.0 * self.stepsize)
            self._compare(layer, 'direction %d over %s' % (d, ', '.join(w for w, _ in targets)),
                          d, None, predicted, numeric)
        self._forward(layer, bottom, top, originals)
        _restore(bottom, originals)


def _restore(bottom, originals):
    """Put back the bottom values a check started from: an in-place forward overwrote them, and
    the next check (one per top element) must start from the same point."""
    for blob, values in zip(bottom, originals):
        blob.data[...] = values


def _unique(blobs):
    seen, out = set(), []
    for blob in blobs:
        if id(blob) not in seen:
            seen.add(id(blob))
            out.append(blob)
    return out
