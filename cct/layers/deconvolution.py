"""Deconvolution (Caffe's deconv_layer.cpp): convolution's backward-data pass run forward, lowered over
whole batch partitions with the machinery of ``cct.layers.convolution``.

Easy to get wrong, all as Caffe does it: the weights are (channels, num_output/group, kh, kw) (input
channels first, the reverse of Convolution); the output size is
stride*(in - 1) + dilation*(k - 1) + 1 - 2*pad; the bias is one value per *output* channel; the top,
not the bottom, is what gets lowered (im2col in backward, col2im in forward). A ``bilinear`` weight
filler with ``lr_mult: 0`` is the usual fixed upsampling layer.
"""
from cct.layers.base import register
from cct.layers.convolution import LoweredConvolution
from cct.layers.geometry import deconv_out_size


@register('Deconvolution')
class DeconvolutionLayer(LoweredConvolution):
    """Caffe's Deconvolution layer (transposed convolution)."""

    reverse_dimensions = True

    def output_hw(self, in_hw):
        g = self.geometry
        return tuple(deconv_out_size(in_hw[i], g.kernel[i], g.stride[i], g.pad[i], g.dilation[i])
                     for i in range(2))

    def forward(self, bottom, top):
        bias = self.blobs[1].dev_data if self.bias_term else None
        for b, t in zip(bottom, top):
            self.backward_gemm(self.col_side_view(b.dev_data), self.image_view(t.dev_data), bias)

    def backward(self, top, propagate_down, bottom):
        want_w = self.param_propagate_down[0]
        if self.bias_term and self.param_propagate_down[1]:
            self.accumulate_bias_diff(top)
        for t, down, b in zip(top, propagate_down, bottom):
            top_diff = self.image_view(t.dev_diff)
            if want_w:
                self.weight_gemm(top_diff, self.col_side_view(b.dev_data))
            if down:
                self.forward_gemm(top_diff, self.col_side_view(b.dev_diff))
