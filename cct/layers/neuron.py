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


class UnaryLayer(NeuronLayer):
    """A neuron computed by the device's ``unary`` op ``op`` (cct.devices.base.UNARY_OPS) with the
    scalars ``scalars()`` returns; its gradient by ``unary_backward`` unless ``differentiable``
    is False."""

    op = None
    differentiable = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.primitives = (('unary', cls.op),) + ((('unary_backward', cls.op),)
                                                  if cls.differentiable else ())

    def scalars(self):
        return {}

    def forward(self, bottom, top):
        self.device.unary(self.op, bottom[0].dev_data, top[0].dev_data, **self.scalars())

    def backward(self, top, propagate_down, bottom):
        if not self.differentiable:
            return super().backward(top, propagate_down, bottom)
        if not propagate_down[0]:
            return
        self.device.unary_backward(self.op, bottom[0].dev_data, top[0].dev_data,
                                   top[0].dev_diff, bottom[0].dev_diff, **self.scalars())


@register('Sigmoid')
class SigmoidLayer(UnaryLayer):
    """y = 1 / (1 + e^-x); backward uses only y, so in-place is exact."""

    op = 'sigmoid'


@register('TanH')
class TanHLayer(UnaryLayer):
    """y = tanh x; dy/dx = 1 - y^2, so in-place is exact."""

    op = 'tanh'


@register('AbsVal')
class AbsValLayer(UnaryLayer):
    """y = |x|; dy/dx = sign(x) (0 at 0). Refuses in-place, as Caffe does."""

    op = 'abs'
    inplace = False

    def setup(self, bottom, top):
        if top[0] is bottom[0]:
            self.fail('AbsVal Layer does not allow in-place computation.')


@register('BNLL')
class BNLLLayer(UnaryLayer):
    """Binomial normal log likelihood, y = log(1 + e^x), computed without overflow (Caffe's
    two-branch stable form; the backward evaluates e^min(x, 50), Caffe's kBNLL_THRESHOLD)."""

    op = 'bnll'


@register('ELU')
class ELULayer(UnaryLayer):
    """y = max(x, 0) + alpha*(e^min(x, 0) - 1)."""

    op = 'elu'

    def setup(self, bottom, top):
        self.alpha = self.dtype.type(self.param.elu_param.alpha)

    def scalars(self):
        return {'alpha': self.alpha}


@register('Threshold')
class ThresholdLayer(UnaryLayer):
    """y = 1 if x > threshold else 0. Not differentiable: asking for its gradient is an error
    (Caffe's Backward_cpu is NOT_IMPLEMENTED)."""

    op = 'threshold'
    differentiable = False

    def setup(self, bottom, top):
        self.threshold = self.dtype.type(self.param.threshold_param.threshold)

    def scalars(self):
        return {'threshold': self.threshold}


@register('Clip')
class ClipLayer(UnaryLayer):
    """y = max(min, min(x, max)); the gradient passes where min <= x <= max."""

    op = 'clip'

    def setup(self, bottom, top):
        clip = self.param.clip_param
        missing = [field for field in ('min', 'max') if not clip.HasField(field)]
        if missing:
            self.fail('clip_param is missing required field(s): %s' % ', '.join(missing))
        self.low = self.dtype.type(clip.min)
        self.high = self.dtype.type(clip.max)

    def scalars(self):
        return {'low': self.low, 'high': self.high}


@register('Swish')
class SwishLayer(NeuronLayer):
    """y = x*sigmoid(beta*x); keeps sigmoid(beta*x) for the backward, so in-place is exact."""

    primitives = ('empty', 'scratch', 'scale', 'mul', 'fill', 'axpby', ('unary', 'sigmoid'))

    def setup(self, bottom, top):
        self.beta = self.dtype.type(self.param.swish_param.beta)
        self.gate = None

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)
        if self.gate is None or self.gate.shape != bottom[0].shape:
            self.gate = self.device.empty(bottom[0].shape, self.dtype)

    def forward(self, bottom, top):
        device = self.device
        x = bottom[0].dev_data
        device.scale(x, self.beta, self.gate)
        device.unary('sigmoid', self.gate, self.gate)
        device.mul(x, self.gate, top[0].dev_data)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        # dy/dx = beta*y + s*(1 - beta*y), s = sigmoid(beta*x) (Caffe's form, from y and s).
        device = self.device
        y = top[0].dev_data
        beta_y = device.scratch('neuron beta_y', y.shape, self.dtype)
        device.scale(y, self.beta, beta_y)
        slope = device.scratch('neuron slope', y.shape, self.dtype)
        device.fill(slope, 1)
        device.axpby(-1.0, beta_y, 1.0, slope)
        device.mul(slope, self.gate, slope)
        device.axpby(1.0, beta_y, 1.0, slope)
        device.mul(top[0].dev_diff, slope, bottom[0].dev_diff)
