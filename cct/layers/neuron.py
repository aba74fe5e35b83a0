"""Element-wise activations (Caffe's sigmoid, tanh, absval, bnll, elu, threshold, clip and swish
layers, each a NeuronLayer: one bottom, one top of the same shape).

Rules that are easy to get wrong:
* Sigmoid is computed as 0.5·tanh(0.5·x) + 0.5, as Caffe's CPU code does; Swish uses the same form.
* AbsVal refuses in-place; its gradient at exactly 0 is 0 (Caffe's sign()).
* BNLL's forward is the stable form (x + log(1 + e^−x) for x > 0); its backward clamps x at 50.
* ELU's backward uses (alpha + y) for x <= 0, so in-place (which reads y for x) is exact.
* Threshold outputs 1 for x > threshold strictly (0 at equality) and has no backward.
* Clip's min and max are required; the gradient passes for min <= x <= max (bounds included).
* BNLL and Clip backward read the bottom data, which in-place is the output; Caffe allows in-place
  anyway and then computes the gradient from the output, and so does cct.
"""
import numpy as np

from cct.layers.base import Layer, register
from cct.workspace import scratch


class NeuronLayer(Layer):
    """One bottom, one top of the same shape (Caffe's NeuronLayer)."""

    num_bottom = 1
    num_top = 1

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def scratch(self, purpose, blob):
        """A temporary of ``blob``'s shape and this layer's dtype (contents undefined)."""
        return scratch('neuron ' + purpose, blob.shape, self.dtype)


def sigmoid(values, out):
    """Caffe's CPU sigmoid, 0.5·tanh(0.5·x) + 0.5 (no overflow for large |x|); ``out`` may be
    ``values``."""
    np.multiply(values, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


@register('Sigmoid')
class SigmoidLayer(NeuronLayer):
    """y = 1 / (1 + e^−x); backward uses only y, so in-place is exact."""

    def forward(self, bottom, top):
        sigmoid(bottom[0].data, top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y = top[0].data
        slope = self.scratch('slope', y)
        np.subtract(1, y, out=slope)
        slope *= y
        np.multiply(top[0].diff, slope, out=bottom[0].diff)


@register('TanH')
class TanHLayer(NeuronLayer):
    """y = tanh x; dy/dx = 1 − y², so in-place is exact."""

    def forward(self, bottom, top):
        np.tanh(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        y = top[0].data
        slope = self.scratch('slope', y)
        np.multiply(y, y, out=slope)
        np.subtract(1, slope, out=slope)
        np.multiply(top[0].diff, slope, out=bottom[0].diff)


@register('AbsVal')
class AbsValLayer(NeuronLayer):
    """y = |x|; dy/dx = sign(x) (0 at 0). Refuses in-place, as Caffe does."""

    inplace = False

    def setup(self, bottom, top):
        if top[0] is bottom[0]:
            self.fail('AbsVal Layer does not allow in-place computation.')

    def forward(self, bottom, top):
        np.abs(bottom[0].data, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dx = bottom[0].diff
        np.sign(bottom[0].data, out=dx)
        dx *= top[0].diff


@register('BNLL')
class BNLLLayer(NeuronLayer):
    """Binomial normal log likelihood, y = log(1 + e^x), computed without overflow."""

    # Caffe's kBNLL_THRESHOLD: the backward evaluates e^min(x, 50).
    threshold = 50.0

    def forward(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        # max(x, 0) + log(1 + e^−|x|) is Caffe's two-branch stable form in one pass.
        tail = self.scratch('tail', x)
        np.abs(x, out=tail)
        np.negative(tail, out=tail)
        np.exp(tail, out=tail)
        np.log1p(tail, out=tail)
        np.maximum(x, 0, out=y)
        y += tail

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        exp_x = self.scratch('exp', bottom[0].data)
        np.minimum(bottom[0].data, self.dtype.type(self.threshold), out=exp_x)
        np.exp(exp_x, out=exp_x)
        dx = bottom[0].diff
        np.multiply(top[0].diff, exp_x, out=dx)
        exp_x += 1
        dx /= exp_x


@register('ELU')
class ELULayer(NeuronLayer):
    """y = max(x, 0) + alpha·(e^min(x, 0) − 1)."""

    def setup(self, bottom, top):
        self.alpha = self.dtype.type(self.param.elu_param.alpha)

    def forward(self, bottom, top):
        x, y = bottom[0].data, top[0].data
        negative = self.scratch('negative', x)
        np.minimum(x, 0, out=negative)
        np.exp(negative, out=negative)
        negative -= 1
        negative *= self.alpha
        np.maximum(x, 0, out=y)
        y += negative

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x, y = bottom[0].data, top[0].data
        slope = self.scratch('slope', x)
        np.add(y, self.alpha, out=slope)
        np.copyto(slope, 1, where=x > 0)
        np.multiply(top[0].diff, slope, out=bottom[0].diff)


@register('Threshold')
class ThresholdLayer(NeuronLayer):
    """y = 1 if x > threshold else 0. Not differentiable: asking for its gradient is an error
    (Caffe's Backward_cpu is NOT_IMPLEMENTED)."""

    def setup(self, bottom, top):
        self.threshold = self.dtype.type(self.param.threshold_param.threshold)

    def forward(self, bottom, top):
        np.greater(bottom[0].data, self.threshold, out=top[0].data)


@register('Clip')
class ClipLayer(NeuronLayer):
    """y = max(min, min(x, max)); the gradient passes where min <= x <= max."""

    def setup(self, bottom, top):
        clip = self.param.clip_param
        missing = [field for field in ('min', 'max') if not clip.HasField(field)]
        if missing:
            self.fail('clip_param is missing required field(s): %s' % ', '.join(missing))
        self.low = self.dtype.type(clip.min)
        self.high = self.dtype.type(clip.max)

    def forward(self, bottom, top):
        # min first, then max, as Caffe nests them: with min > max every output is min.
        y = top[0].data
        np.minimum(bottom[0].data, self.high, out=y)
        np.maximum(y, self.low, out=y)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        x = bottom[0].data
        inside = (x >= self.low) & (x <= self.high)
        np.multiply(top[0].diff, inside, out=bottom[0].diff)


@register('Swish')
class SwishLayer(NeuronLayer):
    """y = x·sigmoid(beta·x); keeps sigmoid(beta·x) for the backward, so in-place is exact."""

    def setup(self, bottom, top):
        self.beta = self.dtype.type(self.param.swish_param.beta)
        self.gate = None

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)
        if self.gate is None or self.gate.shape != bottom[0].shape:
            self.gate = np.empty(bottom[0].shape, self.dtype)

    def forward(self, bottom, top):
        x = bottom[0].data
        np.multiply(x, self.beta, out=self.gate)
        sigmoid(self.gate, self.gate)
        np.multiply(x, self.gate, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        # dy/dx = beta·y + s·(1 − beta·y), s = sigmoid(beta·x) (Caffe's form, from y and s).
        beta_y = self.scratch('beta_y', top[0].data)
        np.multiply(top[0].data, self.beta, out=beta_y)
        slope = self.scratch('slope', beta_y)
        np.subtract(1, beta_y, out=slope)
        slope *= self.gate
        slope += beta_y
        np.multiply(top[0].diff, slope, out=bottom[0].diff)
