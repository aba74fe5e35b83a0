"""The same Caffe net in PyTorch, built from the NetParameter cct trains, for side-by-side timing.

Only what the benchmarked nets use is translated (Convolution with groups, Pooling, LRN, ReLU,
InnerProduct, Dropout, Concat, Split, Eltwise, BatchNorm, Scale, Softmax, SoftmaxWithLoss, Input);
anything else raises, so a benchmark never compares against a different net. ``fold_batch_norm``
builds PyTorch's best form of a Caffe BatchNorm followed by a per-channel Scale on its top: one
``BatchNorm2d`` with its affine weight and bias (the Scale's), instead of an affine-free batch
norm and a separate multiply-add. ``load_cct_params`` copies a cct Net's weights in, so the check in
tests/benchmarks can compare the two nets blob for blob.
"""
import torch
import torch.nn.functional as F
from torch import nn

from cct.layers.geometry import conv_geometry
from cct.proto import caffe_pb2

PoolMethod = caffe_pb2.PoolingParameter
EltwiseOp = caffe_pb2.EltwiseParameter
# Layers whose forward is module(bottom[0]) -> top[0].
_UNARY = ('Convolution', 'Pooling', 'LRN', 'ReLU', 'Dropout', 'BatchNorm', 'Scale')


def _pool_args(p, height, width):
    if p.global_pooling:
        return (height, width), (1, 1), (0, 0)
    k = (p.kernel_h, p.kernel_w) if p.HasField('kernel_h') else (p.kernel_size, p.kernel_size)
    s = (p.stride_h, p.stride_w) if p.HasField('stride_h') else (p.stride, p.stride)
    pad = (p.pad_h, p.pad_w) if p.HasField('pad_h') else (p.pad, p.pad)
    return k, s, pad


class CaffeBatchNorm(nn.Module):
    """Caffe's BatchNorm: batch statistics, or the running ones with ``use_global_stats``
    (Caffe's default: false in TRAIN, true in TEST); with ``affine`` also the folded Scale."""

    def __init__(self, channels, eps, momentum, global_stats, affine):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, eps=eps, momentum=momentum, affine=affine)
        self.global_stats = global_stats

    def forward(self, x):
        norm = self.norm
        return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                            not self.global_stats, norm.momentum, norm.eps)


class CaffeScale(nn.Module):
    """Caffe's Scale with a per-channel operand (axis 1, num_axes 1) and an optional bias."""

    def __init__(self, channels, bias_term):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias_term else None

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if self.bias is None:
            return x * self.weight.view(shape)
        return torch.addcmul(self.bias.view(shape), x, self.weight.view(shape))


def _per_channel_scale(layer):
    p = layer.scale_param
    return len(layer.bottom) == 1 and p.axis == 1 and p.num_axes == 1


def _folds_into(layer, following):
    """Whether the Scale ``following`` folds into BatchNorm ``layer``: it comes next, works in
    place on the BatchNorm's top, per channel, with a bias (BatchNorm2d's affine has one)."""
    return (following is not None and following.type == 'Scale' and
            list(following.bottom) == list(layer.top) and list(following.top) == list(layer.top)
            and _per_channel_scale(following) and following.scale_param.bias_term)


class TorchNet(nn.Module):
    """Runs a filtered, Input-fed Caffe NetParameter with torch ops, in the prototxt's layer order."""

    def __init__(self, net_param, input_shapes, fold_batch_norm=False):
        super().__init__()
        self.steps = []
        self.losses = []
        self.folded = {}   # Scale layer name -> the BatchNorm layer name it was folded into
        shapes = dict(input_shapes)
        self.mods = nn.ModuleDict()
        layers = list(net_param.layer)
        for index, layer in enumerate(layers):
            kind = layer.type
            if kind == 'Input':
                self.steps.append(('input', layer, None))
                continue
            if layer.name in self.folded:
                continue
            if kind == 'Convolution':
                p = layer.convolution_param
                g = conv_geometry(p, 2, layer.name)
                channels = shapes[layer.bottom[0]][1]
                module = nn.Conv2d(channels, p.num_output, g.kernel, g.stride, g.pad, g.dilation,
                                   p.group, p.bias_term)
                self.mods[layer.name] = module
                with torch.no_grad():
                    probe = module(torch.zeros((1,) + tuple(shapes[layer.bottom[0]][1:])))
                shapes[layer.top[0]] = (shapes[layer.bottom[0]][0],) + tuple(probe.shape[1:])
            elif kind == 'InnerProduct':
                p = layer.inner_product_param
                features = 1
                for d in shapes[layer.bottom[0]][1:]:
                    features *= d
                self.mods[layer.name] = nn.Linear(features, p.num_output, bias=p.bias_term)
                shapes[layer.top[0]] = (shapes[layer.bottom[0]][0], p.num_output)
            elif kind == 'Pooling':
                n, c, h, w = shapes[layer.bottom[0]]
                k, s, pad = _pool_args(layer.pooling_param, h, w)
                if layer.pooling_param.pool == PoolMethod.MAX:
                    module = nn.MaxPool2d(k, s, pad, ceil_mode=True)
                elif layer.pooling_param.pool == PoolMethod.AVE:
                    module = nn.AvgPool2d(k, s, pad, ceil_mode=True, count_include_pad=True)
                else:
                    raise ValueError('no torch counterpart for pooling method of %s' % layer.name)
                self.mods[layer.name] = module
                probe = module(torch.zeros(1, c, h, w))
                shapes[layer.top[0]] = (n,) + tuple(probe.shape[1:])
            elif kind == 'LRN':
                p = layer.lrn_param
                if p.norm_region != caffe_pb2.LRNParameter.ACROSS_CHANNELS:
                    raise ValueError('torch has no WITHIN_CHANNEL LRN (%s)' % layer.name)
                # torch, like Caffe, divides alpha by the window size.
                self.mods[layer.name] = nn.LocalResponseNorm(p.local_size, p.alpha, p.beta, p.k)
                shapes[layer.top[0]] = shapes[layer.bottom[0]]
            elif kind == 'ReLU':
                if layer.relu_param.negative_slope:
                    raise ValueError('leaky ReLU is not translated (%s)' % layer.name)
                self.mods[layer.name] = nn.ReLU(inplace=layer.top[0] == layer.bottom[0])
                shapes[layer.top[0]] = shapes[layer.bottom[0]]
            elif kind == 'Dropout':
                # Out of place: torch's autograd refuses an in-place Dropout on an in-place ReLU.
                self.mods[layer.name] = nn.Dropout(layer.dropout_param.dropout_ratio)
                shapes[layer.top[0]] = shapes[layer.bottom[0]]
            elif kind == 'BatchNorm':
                p = layer.batch_norm_param
                global_stats = p.use_global_stats if p.HasField('use_global_stats') else \
                    net_param.state.phase == caffe_pb2.TEST
                following = layers[index + 1] if index + 1 < len(layers) else None
                fold = fold_batch_norm and _folds_into(layer, following)
                if fold:
                    self.folded[following.name] = layer.name
                # Caffe's running sums decay by moving_average_fraction: torch's momentum is 1 - it.
                self.mods[layer.name] = CaffeBatchNorm(
                    shapes[layer.bottom[0]][1], p.eps, 1 - p.moving_average_fraction,
                    global_stats, affine=fold)
                shapes[layer.top[0]] = shapes[layer.bottom[0]]
            elif kind == 'Scale':
                if not _per_channel_scale(layer):
                    raise ValueError('only per-channel Scale (axis 1, num_axes 1, one bottom) is '
                                     'translated (%s)' % layer.name)
                self.mods[layer.name] = CaffeScale(shapes[layer.bottom[0]][1],
                                                   layer.scale_param.bias_term)
                shapes[layer.top[0]] = shapes[layer.bottom[0]]
            elif kind == 'Eltwise':
                shapes[layer.top[0]] = shapes[layer.bottom[0]]
            elif kind == 'Concat':
                axis = layer.concat_param.axis
                first = shapes[layer.bottom[0]]
                total = sum(shapes[b][axis] for b in layer.bottom)
                shapes[layer.top[0]] = first[:axis] + (total,) + first[axis + 1:]
            elif kind == 'Split':
                for top in layer.top:
                    shapes[top] = shapes[layer.bottom[0]]
            elif kind == 'Softmax':
                shapes[layer.top[0]] = shapes[layer.bottom[0]]
            elif kind == 'SoftmaxWithLoss':
                weight = layer.loss_weight[0] if len(layer.loss_weight) else 1.0
                self.losses.append((layer.top[0], weight))
            else:
                raise ValueError('no torch translation for layer %s (type %s)' % (layer.name, kind))
            self.steps.append((kind, layer, self.mods[layer.name] if layer.name in self.mods
                               else None))

    def forward(self, inputs, blobs=None):
        """The weighted loss of ``inputs`` ({blob name: tensor}); every blob's final tensor is left
        in ``blobs`` when a dict is given (an in-place layer's top replaces its bottom, as in
        Caffe)."""
        blobs = {} if blobs is None else blobs
        blobs.update(inputs)
        for kind, layer, module in self.steps:
            if kind == 'input':
                continue
            if kind in _UNARY:
                blobs[layer.top[0]] = module(blobs[layer.bottom[0]])
            elif kind == 'InnerProduct':
                blobs[layer.top[0]] = module(torch.flatten(blobs[layer.bottom[0]], 1))
            elif kind == 'Eltwise':
                blobs[layer.top[0]] = _eltwise(layer.eltwise_param,
                                               [blobs[b] for b in layer.bottom])
            elif kind == 'Concat':
                blobs[layer.top[0]] = torch.cat([blobs[b] for b in layer.bottom],
                                                layer.concat_param.axis)
            elif kind == 'Split':
                for top in layer.top:
                    blobs[top] = blobs[layer.bottom[0]]
            elif kind == 'Softmax':
                blobs[layer.top[0]] = F.softmax(blobs[layer.bottom[0]], layer.softmax_param.axis)
            elif kind == 'SoftmaxWithLoss':
                logits, labels = blobs[layer.bottom[0]], blobs[layer.bottom[1]]
                # Caffe's softmax runs over axis 1 at every spatial position (a 1x1 map: one).
                labels = labels.long().reshape((logits.shape[0],) + tuple(logits.shape[2:]))
                blobs[layer.top[0]] = F.cross_entropy(logits, labels)
        return sum(weight * blobs[name] for name, weight in self.losses)

    def load_cct_params(self, net):
        """Copy the weights (and BatchNorm's running statistics) of cct Net ``net``, built from the
        same NetParameter, into this net."""
        with torch.no_grad():
            for kind, layer, module in self.steps:
                if module is None or not net.has_layer(layer.name):
                    continue
                blobs = [torch.from_numpy(blob.data.copy())
                         for blob in net.layer_by_name(layer.name).blobs]
                if kind in ('Convolution', 'InnerProduct'):
                    module.weight.copy_(blobs[0].reshape(module.weight.shape))
                    if module.bias is not None:
                        module.bias.copy_(blobs[1])
                elif kind == 'Scale':
                    module.weight.copy_(blobs[0])
                    if module.bias is not None:
                        module.bias.copy_(blobs[1])
                elif kind == 'BatchNorm':
                    normaliser = float(blobs[2][0])
                    factor = 0.0 if normaliser == 0 else 1.0 / normaliser
                    module.norm.running_mean.copy_(blobs[0] * factor)
                    module.norm.running_var.copy_(blobs[1] * factor)
            for scale_name, norm_name in self.folded.items():
                scale = net.layer_by_name(scale_name).blobs
                norm = self.mods[norm_name].norm
                norm.weight.copy_(torch.from_numpy(scale[0].data.copy()))
                norm.bias.copy_(torch.from_numpy(scale[1].data.copy()))

    def param_grads(self):
        """{Caffe layer name: [gradients in Caffe's blob order]} (a folded Scale's under its own
        name)."""
        grads = {}
        for kind, layer, module in self.steps:
            if module is None or kind in ('BatchNorm', 'ReLU', 'Pooling', 'LRN', 'Dropout'):
                continue
            grads[layer.name] = [p.grad for p in (module.weight, module.bias) if p is not None]
        for scale_name, norm_name in self.folded.items():
            norm = self.mods[norm_name].norm
            grads[scale_name] = [norm.weight.grad, norm.bias.grad]
        return grads


def _eltwise(p, tensors):
    if p.operation == EltwiseOp.SUM:
        coeffs = list(p.coeff) or [1.0] * len(tensors)
        total = tensors[0] if coeffs[0] == 1 else coeffs[0] * tensors[0]
        for tensor, coeff in zip(tensors[1:], coeffs[1:]):
            total = total + tensor if coeff == 1 else total + coeff * tensor
        return total
    if p.operation == EltwiseOp.PROD:
        total = tensors[0]
        for tensor in tensors[1:]:
            total = total * tensor
        return total
    total = tensors[0]
    for tensor in tensors[1:]:
        total = torch.maximum(total, tensor)
    return total
