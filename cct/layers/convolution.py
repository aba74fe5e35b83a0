"""Convolution, lowered Caffe con Troll style (Caffe's conv_layer.cpp / base_conv_layer.cpp semantics).

Caffe lowers and multiplies one image at a time on one core. Here the batch is cut into
*partitions* spread over the cores: each thread lowers a partition into its own column buffer
(rows: channel x kernel offsets, columns: image x output pixel) and runs one GEMM per group over it
(cct.kernels.lowering). ``workspace.partition_size`` picks the smallest partition whose GEMMs are
still large, so the columns stay in cache. Layers with vertical stride 1 may instead lower only
the horizontal taps of each image and run one GEMM per kernel row on windows of that buffer (the
*row lowering*, a kh-th of the lowering traffic), or lay that buffer out in panels of one vector
of output columns for cct's own register-blocked kernels (the *panel lowering*: no BLAS packing,
all kernel rows summed in registers). ``workspace.choose_lowering`` picks one of the three for each
product (forward, data gradient, weight gradient) from the layer's shape.
``LoweredConvolution`` holds that machinery (Caffe's BaseConvolutionLayer) for Convolution and
Deconvolution alike.

Rules worth remembering: output size is floor((in + 2*pad - dilation*(k-1) - 1)/stride) + 1; weights
are (num_output, channels/group, kh, kw); an omitted filler is constant 0; several bottoms are each
convolved with the same weights into the matching top.
"""
import numpy as np

from cct import kernels, workspace
from cct.layers.base import Layer, register
from cct.layers.geometry import check_window_reach, conv_geometry, conv_out_size


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
        if self.channels == 0:
            self.fail('the input (shape %s) has no channels' % (bottom[0].shape,))
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
        g = self.geometry
        for i, axis in enumerate(('height', 'width')):
            check_window_reach(self.describe(), axis, self.image_hw[i], g.kernel[i], g.stride[i],
                               g.pad[i], g.dilation[i])
        kh, kw = self.geometry.kernel
        self.col_rows = self.conv_in_channels * kh * kw
        self.col_pixels = self.col_hw[0] * self.col_hw[1]
        self.partition = workspace.partition_size(
            self.num, self.col_rows // self.group * self.col_pixels * self.dtype.itemsize,
            self.conv_out_channels * self.col_rows // self.group * self.col_pixels,
            kernels.max_threads())
        g = self.geometry
        self.panel_sizes = None
        if g.stride[0] == 1 and g.kernel[0] > 1:
            self.panel_sizes = kernels.panel_sizes(
                self._geometry(), self.image_hw[0], self.image_hw[1],
                self.conv_in_channels // self.group, self.conv_out_channels // self.group,
                self.dtype.itemsize)
            # Images per weight-gradient task of the panel lowering: sums over 512 pixels.
            self.panel_partition = max(1, min(-(-512 // self.col_pixels),
                                              -(-self.num // kernels.max_threads())))
        self.lowering = workspace.choose_lowering(
            g.kernel[0], g.stride[0], self.conv_in_channels // self.group * g.kernel[1],
            self.conv_out_channels // self.group, self.col_hw, self.panel_sizes)
        for blob in top:
            blob.reshape(shape[:self.axis] + (self.num_output,) + self.out_hw)
        self._shape_key = key

    # ------------------------------------------------ partition-wide primitives
    def partitions(self):
        """(start, stop) of each batch partition (the images one thread lowers at a time)."""
        return [(start, min(start + self.partition, self.num))
                for start in range(0, self.num, self.partition)]

    def image_view(self, array):
        """``array`` (a blob's data or diff) as (num, conv_in_channels, *image_hw)."""
        return array.reshape((self.num, self.conv_in_channels) + self.image_hw)

    def col_side_view(self, array):
        """``array`` as (num, conv_out_channels, column-side pixels)."""
        return array.reshape(self.num, self.conv_out_channels, self.col_pixels)

    def _geometry(self):
        g = self.geometry
        return (g.kernel[0], g.kernel[1], g.pad[0], g.pad[1], g.stride[0], g.stride[1],
                g.dilation[0], g.dilation[1], self.col_hw[0], self.col_hw[1])

    def _panel_scratch(self, purpose, values):
        return workspace.scratch(purpose, (kernels.max_threads(), values), self.dtype)

    def _packed_weights(self):
        size = max(self.panel_sizes['forward_weights'], self.panel_sizes['backward_weights'])
        return workspace.scratch('packed_weights', (self.group * size,), self.dtype)

    def _scratch(self, method):
        threads = kernels.max_threads()
        if method == 'rows':
            rows = kernels.row_lowering_rows(self._geometry())
            kw = self.geometry.kernel[1]
            return (workspace.scratch('col', (threads, self.conv_in_channels // self.group * kw *
                                              rows * self.col_hw[1]), self.dtype),
                    workspace.scratch('permuted_weights', (self.blobs[0].count,), self.dtype))
        columns = self.partition * self.col_pixels
        return (workspace.scratch('col', (threads, self.col_rows // self.group * columns),
                                  self.dtype),
                workspace.scratch('gemm_rows', (threads, self.conv_out_channels * columns),
                                  self.dtype))

    def _weights(self):
        return self.blobs[0].data.reshape(self.conv_out_channels, -1)

    def _no_values(self):
        return workspace.scratch('none', (0,), self.dtype)

    def forward_gemm(self, images, out, bias=None):
        """Caffe's forward_cpu_gemm over every partition: out = W * im2col(images) (+ bias)."""
        bias = self._no_values() if bias is None else bias
        if self.lowering.forward == 'panels':
            kernels.panel_forward(images, self._weights(), bias, out, self._geometry(), self.group,
                                  self._panel_scratch('col', self.panel_sizes['r']),
                                  self._packed_weights())
        elif self.lowering.forward == 'rows':
            kernels.row_lowered_forward(images, self._weights(), bias, out, self._geometry(),
                                        self.group, *self._scratch('rows'))
        else:
            kernels.lowered_forward(images, self._weights(), bias, out, self._geometry(),
                                    self.group, self.partition, *self._scratch('full'))

    def backward_gemm(self, rows, images, bias=None):
        """Caffe's backward_cpu_gemm over every partition: images = col2im(W^T * rows) (+ bias
        per image-side channel)."""
        bias = self._no_values() if bias is None else bias
        if self.lowering.data == 'panels':
            kernels.panel_backward_data(rows, self._weights(), bias, images, self._geometry(),
                                        self.group,
                                        self._panel_scratch('panel_top', self.panel_sizes['top']),
                                        self._panel_scratch('panel_dr', self.panel_sizes['dr']),
                                        self._packed_weights())
        elif self.lowering.data == 'rows':
            kernels.row_lowered_backward_data(rows, self._weights(), bias, images,
                                              self._geometry(), self.group, *self._scratch('rows'))
        else:
            kernels.lowered_backward_data(rows, self._weights(), bias, images, self._geometry(),
                                          self.group, self.partition, *self._scratch('full'))

    def weight_gemm(self, images, rows, want_weights=True, bias_diff=None):
        """Caffe's weight_cpu_gemm over every partition: weight_diff += rows * im2col(images)^T;
        with ``bias_diff``, also bias_diff += the sum of ``rows`` per output channel."""
        threads = kernels.max_threads()
        weight_diff = self.blobs[0].diff.reshape(self.conv_out_channels, -1)
        bias_diff = self._no_values() if bias_diff is None else bias_diff
        sums = 0
        if want_weights:
            sums = (self.group * self.panel_sizes['weight_sums']
                    if self.lowering.weights == 'panels' else weight_diff.size)
        partials = (workspace.scratch('partial_weights', (threads, sums), self.dtype),
                    workspace.scratch('partial_bias', (threads, self.conv_out_channels),
                                      self.dtype))
        if self.lowering.weights == 'panels':
            count = self.panel_partition
            kernels.panel_weight_grad(images, rows, weight_diff, bias_diff, want_weights,
                                      self._geometry(), self.group, count,
                                      self._panel_scratch('col', count * self.panel_sizes['r']),
                                      self._panel_scratch('panel_top',
                                                          count * self.panel_sizes['top_t']),
                                      *partials)
        elif self.lowering.weights == 'rows':
            kernels.row_lowered_weight_grad(images, rows, weight_diff, bias_diff, want_weights,
                                            self._geometry(), self.group, *self._scratch('rows'),
                                            *partials)
        else:
            kernels.lowered_weight_grad(images, rows, weight_diff, bias_diff, want_weights,
                                        self._geometry(), self.group, self.partition,
                                        *self._scratch('full'), *partials)

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
            self.forward_gemm(self.image_view(b.data), self.col_side_view(t.data), bias)

    def backward(self, top, propagate_down, bottom):
        want_w = self.param_propagate_down[0]
        want_bias = self.bias_term and self.param_propagate_down[1]
        for t, down, b in zip(top, propagate_down, bottom):
            top_diff = self.col_side_view(t.diff)
            if want_w or want_bias:
                self.weight_gemm(self.image_view(b.data), top_diff, want_w,
                                 self.blobs[1].diff if want_bias else None)
            if down:
                self.backward_gemm(top_diff, self.image_view(b.diff))
