"""Convolution, lowered Caffe con Troll style (Caffe's conv_layer.cpp / base_conv_layer.cpp semantics).

Caffe lowers and multiplies one image at a time. Here a whole *partition* of the batch is lowered
into one column buffer (rows: channel x kernel offsets, columns: image x output pixel) and each group
is one GEMM over it; partitions are sized so the buffer stays under ``workspace.LOWERING_BUDGET_BYTES``.
``LoweredConvolution`` holds that machinery (Caffe's BaseConvolutionLayer) for Convolution and
Deconvolution alike.

Rules worth remembering: output size is floor((in + 2*pad - dilation*(k-1) - 1)/stride) + 1; weights
are (num_output, channels/group, kh, kw); an omitted filler is constant 0; several bottoms are each
convolved with the same weights into the matching top.
"""
import numpy as np

from cct import kernels, workspace
from cct.layers.base import Layer, register
from cct.layers.geometry import conv_geometry, conv_out_size


class LoweredConvolution(Layer):
    """Geometry, parameters and the partition-wide lowered GEMMs shared by Convolution and
    Deconvolution (Caffe's BaseConvolutionLayer).

    In Caffe's terms the *image side* is what im2col reads (``conv_in_channels`` planes of
    ``image_hw``) and the *column side* is what one GEMM per group produces (``conv_out_channels``
    planes of ``col_hw``). Convolution lowers its bottom; Deconvolution (``reverse_dimensions``)
    lowers its top, so its weights are (channels, num_output/group, kh, kw).
    """

    min_bottom = 1
    min_top = 1
    equal_bottom_top = True
    reverse_dimensions = False

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
        if self.reverse_dimensions:
            self.conv_in_channels, self.conv_out_channels = self.num_output, self.channels
        else:
            self.conv_in_channels, self.conv_out_channels = self.channels, self.num_output
        kh, kw = self.geometry.kernel
        specs = [((self.conv_out_channels, self.conv_in_channels // self.group, kh, kw),
                  p.weight_filler)]
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
        self.in_hw = tuple(shape[self.axis + 1:])
        self.out_hw = tuple(self.output_hw(self.in_hw))
        if min(self.out_hw) <= 0:
            self.fail('output would be empty: input %s with kernel %s, stride %s, pad %s, '
                      'dilation %s' % (self.in_hw, self.geometry.kernel, self.geometry.stride,
                                       self.geometry.pad, self.geometry.dilation))
        if self.reverse_dimensions:
            self.image_hw, self.col_hw = self.out_hw, self.in_hw
        else:
            self.image_hw, self.col_hw = self.in_hw, self.out_hw
        kh, kw = self.geometry.kernel
        self.col_rows = self.conv_in_channels * kh * kw
        self.col_pixels = self.col_hw[0] * self.col_hw[1]
        per_image = self.col_rows * self.col_pixels * self.dtype.itemsize
        self.partition = int(max(1, min(self.num,
                                        workspace.LOWERING_BUDGET_BYTES // max(per_image, 1))))
        for blob in top:
            blob.reshape(shape[:self.axis] + (self.num_output,) + self.out_hw)
        self._shape_key = key

    # ------------------------------------------------ partition-wide primitives
    def partitions(self):
        """(start, stop) of each batch partition whose column buffer fits the lowering budget."""
        return [(start, min(start + self.partition, self.num))
                for start in range(0, self.num, self.partition)]

    def image_view(self, array):
        """``array`` (a blob's data or diff) as (num, conv_in_channels, *image_hw)."""
        return array.reshape((self.num, self.conv_in_channels) + self.image_hw)

    def col_side_view(self, array):
        """``array`` as (num, conv_out_channels, column-side pixels)."""
        return array.reshape(self.num, self.conv_out_channels, self.col_pixels)

    def column_buffer(self, count):
        """The shared (col_rows, count * col_pixels) scratch, split per group."""
        col = workspace.scratch('col', (self.col_rows, count * self.col_pixels), self.dtype)
        return col, col.reshape(self.group, self.col_rows // self.group, -1)

    def row_buffer(self, count):
        """The shared (conv_out_channels, count * col_pixels) scratch, split per group."""
        rows = workspace.scratch('gemm_rows', (self.conv_out_channels, count * self.col_pixels),
                                 self.dtype)
        return rows, rows.reshape(self.group, self.conv_out_channels // self.group, -1)

    def grouped_weights(self):
        return self.blobs[0].data.reshape(self.group, self.conv_out_channels // self.group, -1)

    def lower(self, images, col):
        g = self.geometry
        kernels.im2col(images, col, g.kernel[0], g.kernel[1], g.pad[0], g.pad[1], g.stride[0],
                       g.stride[1], g.dilation[0], g.dilation[1], self.col_hw[0], self.col_hw[1])

    def unlower(self, col, images):
        g = self.geometry
        kernels.col2im(col, images, g.kernel[0], g.kernel[1], g.pad[0], g.pad[1], g.stride[0],
                       g.stride[1], g.dilation[0], g.dilation[1], self.col_hw[0], self.col_hw[1])

    def gather_rows(self, by_image, count):
        """Copy (count, conv_out, P) into the row buffer as (conv_out, count * P)."""
        rows, grouped = self.row_buffer(count)
        rows.reshape(self.conv_out_channels, count, self.col_pixels)[...] = \
            by_image.transpose(1, 0, 2)
        return grouped

    def scatter_rows(self, rows, by_image, bias=None):
        """Write the row buffer (conv_out, count * P) to (count, conv_out, P), adding ``bias``."""
        count = by_image.shape[0]
        source = rows.reshape(self.conv_out_channels, count, self.col_pixels).transpose(1, 0, 2)
        if bias is not None:
            np.add(source, bias[None, :, None], out=by_image)
        else:
            by_image[...] = source

    def weights_times(self, cols, count):
        """The row buffer set to W * col, one GEMM per group over the whole partition."""
        rows, products = self.row_buffer(count)
        weights = self.grouped_weights()
        for g in range(self.group):
            kernels.gemm(weights[g], cols[g], products[g])
        return rows

    def forward_gemm(self, images, out, bias=None):
        """Caffe's forward_cpu_gemm over a partition: out = W * im2col(images) (+ bias)."""
        count = images.shape[0]
        col, cols = self.column_buffer(count)
        self.lower(images, col)
        self.scatter_rows(self.weights_times(cols, count), out, bias)

    def backward_gemm(self, grouped_rows, images):
        """Caffe's backward_cpu_gemm over a partition: images = col2im(W^T * rows)."""
        col, cols = self.column_buffer(images.shape[0])
        weights = self.grouped_weights()
        for g in range(self.group):
            kernels.gemm(weights[g], grouped_rows[g], cols[g], trans_a=True)
        self.unlower(col, images)

    def weight_gemm(self, grouped_rows, cols):
        """Caffe's weight_cpu_gemm: weight_diff += rows * col^T, per group."""
        weight_diff = self.blobs[0].diff.reshape(self.group, self.conv_out_channels // self.group,
                                                 -1)
        for g in range(self.group):
            kernels.gemm(grouped_rows[g], cols[g], weight_diff[g], trans_b=True, beta=1.0)

    def accumulate_bias_diff(self, top):
        for t in top:
            self.blobs[1].diff[...] += t.diff.reshape(self.num, self.num_output, -1).sum(
                axis=(0, 2), dtype=np.float64)


@register('Convolution')
class ConvolutionLayer(LoweredConvolution):
    """Caffe's Convolution layer, lowered over batch partitions (see the module docstring)."""

    def output_hw(self, in_hw):
        g = self.geometry
        return tuple(conv_out_size(in_hw[i], g.kernel[i], g.stride[i], g.pad[i], g.dilation[i])
                     for i in range(2))

    def forward(self, bottom, top):
        bias = self.blobs[1].data if self.bias_term else None
        for b, t in zip(bottom, top):
            images = self.image_view(b.data)
            out = self.col_side_view(t.data)
            for start, stop in self.partitions():
                self.forward_gemm(images[start:stop], out[start:stop], bias)

    def backward(self, top, propagate_down, bottom):
        want_w = self.param_propagate_down[0]
        if self.bias_term and self.param_propagate_down[1]:
            self.accumulate_bias_diff(top)
        for t, down, b in zip(top, propagate_down, bottom):
            if not (want_w or down):
                continue
            top_diff = self.col_side_view(t.diff)
            images = self.image_view(b.data)
            image_diff = self.image_view(b.diff) if down else None
            for start, stop in self.partitions():
                grads = self.gather_rows(top_diff[start:stop], stop - start)
                if want_w:
                    col, cols = self.column_buffer(stop - start)
                    self.lower(images[start:stop], col)
                    self.weight_gemm(grads, cols)
                if down:
                    self.backward_gemm(grads, image_diff[start:stop])
