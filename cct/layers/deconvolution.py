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
        bias = self.blobs[1].data if self.bias_term else None
        for b, t in zip(bottom, top):
            inputs = self.col_side_view(b.data)
            out = self.image_view(t.data)
            for start, stop in self.partitions():
                rows = self.gather_rows(inputs[start:stop], stop - start)
                self.backward_gemm(rows, out[start:stop])
                if bias is not None:
                    out[start:stop] += bias[None, :, None, None]

    def backward(self, top, propagate_down, bottom):
        want_w = self.param_propagate_down[0]
        if self.bias_term and self.param_propagate_down[1]:
            self.accumulate_bias_diff(top)
        for t, down, b in zip(top, propagate_down, bottom):
            if not (want_w or down):
                continue
            top_diff = self.image_view(t.diff)
            inputs = self.col_side_view(b.data)
            input_diff = self.col_side_view(b.diff) if down else None
            for start, stop in self.partitions():
                count = stop - start
                # One lowering of the top gradient serves both products (Caffe's skip_im2col).
                col, cols = self.column_buffer(count)
                self.lower(top_diff[start:stop], col)
                if want_w:
                    self.weight_gemm(self.gather_rows(inputs[start:stop], count), cols)
                if down:
                    self.scatter_rows(self.weights_times(cols, count), input_diff[start:stop])
