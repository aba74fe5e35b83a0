"""Convolution, lowered Caffe con Troll style (Caffe's conv_layer.cpp / base_conv_layer.cpp semantics).

Caffe lowers and multiplies one image at a time. Here a whole *partition* of the batch is lowered
into one column buffer (rows: channel x kernel offsets, columns: image x output pixel) and each group
is one GEMM over it; partitions are sized so the buffer stays under ``workspace.LOWERING_BUDGET_BYTES``.

Rules worth remembering: output size is floor((in + 2*pad - dilation*(k-1) - 1)/stride) + 1; weights
are (num_output, channels/group, kh, kw); an omitted filler is constant 0; several bottoms are each
convolved with the same weights into the matching top.
"""
import numpy as np

from cct import kernels, workspace
from cct.layers.base import Layer, register
from cct.layers.geometry import conv_geometry, conv_out_size


class LoweredConvolution(Layer):
    """Shared machinery of Convolution and Deconvolution: geometry, params, partitions."""

    min_bottom = 1
    min_top = 1
    equal_bottom_top = True

    def setup(self, bottom, top):
        p = self.param.convolution_param
        self.axis = bottom[0].canonical_axis(p.axis)
        spatial = bottom[0].ndim - self.axis - 1
        if spatial != 2:
            self.fail('only 2-D convolution is supported (input %s has %d spatial axes after '
                      'axis %d)' % (bottom[0].shape, spatial, self.axis))
        self.geometry = conv_geometry(p, spatial, self.describe())
        if not p.HasField('num_output') or p.num_output == 0:
            self.fail('num_output must be specified and positive')
        self.num_output = p.num_output
        self.group = p.group
        self.channels = bottom[0].shape[self.axis]
        if self.group == 0 or self.channels % self.group or self.num_output % self.group:
            self.fail('channels (%d) and num_output (%d) must be divisible by group (%d)'
                      % (self.channels, self.num_output, self.group))
        kh, kw = self.geometry.kernel
        specs = [(self.weight_shape(kh, kw), p.weight_filler)]
        if p.bias_term:
            specs.append(((self.num_output,), p.bias_filler))
        self.bias_term = p.bias_term
        self.make_param_blobs(specs)
        self._shape_key = None

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        key = (shape, len(bottom))
        if key == self._shape_key:
            return
        for i, blob in enumerate(bottom[1:], 1):
            if blob.shape != shape:
                self.fail('all inputs must have the same shape; bottom 0 is %s, bottom %d is %s'
                          % (shape, i, blob.shape))
        if shape[self.axis] != self.channels:
            self.fail('input has %d channels, the weights expect %d' % (shape[self.axis],
                                                                       self.channels))
        self.num = int(np.prod(shape[:self.axis], dtype=np.int64))
        self.in_hw = shape[self.axis + 1:]
        self.out_hw = self.output_hw(self.in_hw)
        if min(self.out_hw) <= 0:
            self.fail('output would be empty: input %s with kernel %s, stride %s, pad %s'
                      % (self.in_hw, self.geometry.kernel, self.geometry.stride, self.geometry.pad))
        for blob in top:
            blob.reshape(shape[:self.axis] + (self.num_output,) + tuple(self.out_hw))
        self._shape_key = key

    def partition_size(self, col_rows, col_pixels):
        """Images per partition: as many as keep the column buffer under the lowering budget."""
        per_image = col_rows * col_pixels * self.dtype.itemsize
        return int(max(1, min(self.num, workspace.LOWERING_BUDGET_BYTES // max(per_image, 1))))

    def lower(self, images, col):
        g = self.geometry
        kernels.im2col(images, col, g.kernel[0], g.kernel[1], g.pad[0], g.pad[1], g.stride[0],
                       g.stride[1], g.dilation[0], g.dilation[1], col_hw(self)[0], col_hw(self)[1])

    def unlower(self, col, images):
        g = self.geometry
        kernels.col2im(col, images, g.kernel[0], g.kernel[1], g.pad[0], g.pad[1], g.stride[0],
                       g.stride[1], g.dilation[0], g.dilation[1], col_hw(self)[0], col_hw(self)[1])


def col_hw(layer):
    """Spatial size of the lowered side: the output for Convolution, the input for Deconvolution."""
    return layer.out_hw if layer.type != 'Deconvolution' else layer.in_hw


@register('Convolution')
class ConvolutionLayer(LoweredConvolution):
    """Caffe's Convolution layer, lowered over batch partitions (see the module docstring)."""

    def weight_shape(self, kh, kw):
        return (self.num_output, self.channels // self.group, kh, kw)

    def output_hw(self, in_hw):
        g = self.geometry
        return tuple(conv_out_size(in_hw[i], g.kernel[i], g.stride[i], g.pad[i], g.dilation[i])
                     for i in range(2))

    def forward(self, bottom, top):
        weights = self.blobs[0].data.reshape(self.group, self.num_output // self.group, -1)
        bias = self.blobs[1].data if self.bias_term else None
        pixels = self.out_hw[0] * self.out_hw[1]
        rows = weights.shape[2] * self.group
        part = self.partition_size(rows, pixels)
        for b, t in zip(bottom, top):
            images = b.data.reshape((self.num, self.channels) + tuple(self.in_hw))
            out = t.data.reshape(self.num, self.num_output, pixels)
            for start in range(0, self.num, part):
                stop = min(start + part, self.num)
                n = stop - start
                col = workspace.scratch('col', (rows, n * pixels), self.dtype)
                self.lower(images[start:stop], col)
                product = workspace.scratch('gemm_out', (self.num_output, n * pixels), self.dtype)
                cols = col.reshape(self.group, rows // self.group, n * pixels)
                products = product.reshape(self.group, self.num_output // self.group, n * pixels)
                for g in range(self.group):
                    kernels.gemm(weights[g], cols[g], products[g])
                by_image = product.reshape(self.num_output, n, pixels).transpose(1, 0, 2)
                if bias is not None:
                    np.add(by_image, bias[None, :, None], out=out[start:stop])
                else:
                    out[start:stop] = by_image

    def backward(self, top, propagate_down, bottom):
        weights = self.blobs[0].data.reshape(self.group, self.num_output // self.group, -1)
        want_w = self.param_propagate_down[0]
        want_b = self.bias_term and self.param_propagate_down[1]
        weight_diff = self.blobs[0].diff.reshape(weights.shape) if want_w else None
        pixels = self.out_hw[0] * self.out_hw[1]
        rows = weights.shape[2] * self.group
        part = self.partition_size(rows, pixels)
        for t, down, b in zip(top, propagate_down, bottom):
            top_diff = t.diff.reshape(self.num, self.num_output, pixels)
            if want_b:
                self.blobs[1].diff[...] += top_diff.sum(axis=(0, 2), dtype=np.float64)
            if not (want_w or down):
                continue
            images = b.data.reshape((self.num, self.channels) + tuple(self.in_hw))
            image_diff = b.diff.reshape(images.shape) if down else None
            for start in range(0, self.num, part):
                stop = min(start + part, self.num)
                n = stop - start
                grads = workspace.scratch('gemm_out', (self.num_output, n, pixels), self.dtype)
                grads[...] = top_diff[start:stop].transpose(1, 0, 2)
                grads = grads.reshape(self.group, self.num_output // self.group, n * pixels)
                col = workspace.scratch('col', (rows, n * pixels), self.dtype)
                cols = col.reshape(self.group, rows // self.group, n * pixels)
                if want_w:
                    self.lower(images[start:stop], col)
                    for g in range(self.group):
                        weight_diff[g] += grads[g] @ cols[g].T
                if down:
                    for g in range(self.group):
                        kernels.gemm(weights[g], grads[g], cols[g], trans_a=True)
                    self.unlower(col, image_diff[start:stop])
