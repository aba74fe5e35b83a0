"""The same Caffe net in PyTorch, built from the NetParameter cct trains, for side-by-side timing.

Only what the benchmarked nets use is translated (Convolution, Pooling, LRN, ReLU, InnerProduct,
Dropout, Concat, Split, SoftmaxWithLoss, Input); anything else raises, so a benchmark never compares
against a different net.
"""
import torch
import torch.nn.functional as F
from torch import nn

from cct.layers.geometry import conv_geometry
from cct.proto import caffe_pb2

PoolMethod = caffe_pb2.PoolingParameter


def _pool_args(p, height, width):
    if p.global_pooling:
        return (height, width), (1, 1), (0, 0)
    k = (p.kernel_h, p.kernel_w) if p.HasField('kernel_h') else (p.kernel_size, p.kernel_size)
    s = (p.stride_h, p.stride_w) if p.HasField('stride_h') else (p.stride, p.stride)
    pad = (p.pad_h, p.pad_w) if p.HasField('pad_h') else (p.pad, p.pad)
    return k, s, pad


class TorchNet(nn.Module):
    """Runs a filtered, Input-fed Caffe NetParameter with torch ops, in the prototxt's layer order."""

    def __init__(self, net_param, input_shapes):
        super().__init__()
        self.steps = []
        self.losses = []
        shapes = dict(input_shapes)
        self.mods = nn.ModuleDict()
        for layer in net_param.layer:
            kind = layer.type
            if kind == 'Input':
                self.steps.append(('input', layer, None))
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
                self.mods[layer.name] = nn.ReLU(inplace=layer.top[0] == layer.bottom[0])
                shapes[layer.top[0]] = shapes[layer.bottom[0]]
            elif kind == 'Dropout':
                # Out of place: torch's autograd refuses an in-place Dropout on an in-place ReLU.
                self.mods[layer.name] = nn.Dropout(layer.dropout_param.dropout_ratio)
                shapes[layer.top[0]] = shapes[layer.bottom[0]]
            elif kind == 'Concat':
                axis = layer.concat_param.axis
                first = shapes[layer.bottom[0]]
                total = sum(shapes[b][axis] for b in layer.bottom)
                shapes[layer.top[0]] = first[:axis] + (total,) + first[axis + 1:]
            elif kind == 'Split':
                for top in layer.top:
                    shapes[top] = shapes[layer.bottom[0]]
            elif kind == 'SoftmaxWithLoss':
                weight = layer.loss_weight[0] if len(layer.loss_weight) else 1.0
                self.losses.append((layer.top[0], weight))
            else:
                raise ValueError('no torch translation for layer %s (type %s)' % (layer.name, kind))
            self.steps.append((kind, layer, self.mods[layer.name] if layer.name in self.mods
                               else None))

    def forward(self, inputs):
        blobs = dict(inputs)
        for kind, layer, module in self.steps:
            if kind == 'input':
                continue
            if kind in ('Convolution', 'Pooling', 'LRN', 'ReLU', 'Dropout'):
                blobs[layer.top[0]] = module(blobs[layer.bottom[0]])
            elif kind == 'InnerProduct':
                blobs[layer.top[0]] = module(torch.flatten(blobs[layer.bottom[0]], 1))
            elif kind == 'Concat':
                blobs[layer.top[0]] = torch.cat([blobs[b] for b in layer.bottom],
                                                layer.concat_param.axis)
            elif kind == 'Split':
                for top in layer.top:
                    blobs[top] = blobs[layer.bottom[0]]
            elif kind == 'SoftmaxWithLoss':
                logits, labels = blobs[layer.bottom[0]], blobs[layer.bottom[1]]
                blobs[layer.top[0]] = F.cross_entropy(logits, labels.long())
        return sum(weight * blobs[name] for name, weight in self.losses)
