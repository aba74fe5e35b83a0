"""Convolution, lowered Caffe con Troll style (Caffe's conv_layer.cpp / base_conv_layer.cpp semantics).

Caffe lowers and multiplies one image at a time on one core. Here the layer makes a convolution
*plan* at reshape (``Device.conv_plan``) and runs the batch's lowered products through it: on the
CPU (cct/devices/cpu_conv.py) the batch is cut into CcT partitions spread over the cores, each
product lowered in full, by rows or in panels as ``workspace.choose_lowering`` decides; an
accelerator lowers a partition of the batch into one column buffer and multiplies once per group.
``LoweredConvolution`` holds the geometry and parameters (Caffe's BaseConvolutionLayer) for
Convolution and Deconvolution alike.

Rules worth remembering: output size is floor((in + 2*pad - dilation*(k-1) - 1)/stride) + 1; weights
are (num_output, channels/group, kh, kw); an omitted filler is constant 0; several bottoms are each
convolved with the same weights into the matching top.
"""
import numpy as np

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
    primitives = ('conv_plan', 'conv_forward', 'conv_backward_data', 'conv_backward_weights',
                  'channel_sum')

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
        g = self.geometry
        self.plan = self.device.conv_plan(self.num, self.conv_in_channels, self.image_hw,
                                          self.conv_out_channels, self.col_hw, self.group,
                                          g.kernel, g.pad, g.stride, g.dilation, self.dtype)
        for blob in top:
            blob.reshape(shape[:self.axis] + (self.num_output,) + self.out_hw)
        self._shape_key = key

    # The CPU plan's choices, for tests and benchmarks that look at them.
    @property
    def lowering(self):
        return self.plan.lowering

    @property
    def partition(self):
        return self.plan.partition

    @partition.setter
    def partition(self, images):
        self.plan.partition = images

    def partitions(self):
        """(start, stop) of each batch partition (the images one thread lowers at a time)."""
        return [(start, min(start + self.partition, self.num))
                for start in range(0, self.num, self.partition)]

    # ------------------------------------------------ the device's lowered products
    def image_view(self, array):
        """``array`` (a blob's data or diff) as (num, conv_in_channels, *image_hw)."""
        return array.reshape((self.num, self.conv_in_channels) + self.image_hw)

    def col_side_view(self, array):
        """``array`` as (num, conv_out_channels, column-side pixels)."""
        return array.reshape(self.num, self.conv_out_channels, self.col_pixels)

    def _weights(self):
        return self.blobs[0].dev_data.reshape(self.conv_out_channels, -1)

    def forward_gemm(self, images, out, bias=None):
        """Caffe's forward_cpu_gemm over the batch: out = W * im2col(images) (+ bias)."""
        self.device.conv_forward(self.plan, images, self._weights(), bias, out)

    def backward_gemm(self, rows, images, bias=None):
        """Caffe's backward_cpu_gemm over the batch: images = col2im(W^T * rows) (+ bias per
        image-side channel)."""
        self.device.conv_backward_data(self.plan, rows, self._weights(), bias, images)

    def weight_gemm(self, images, rows, want_weights=True, bias_diff=None):
        """Caffe's weight_cpu_gemm over the batch: weight_diff += rows * im2col(images)^T; with
        ``bias_diff``, also bias_diff += the sum of ``rows`` per output channel."""
        weight_diff = self.blobs[0].dev_diff.reshape(self.conv_out_channels, -1) \
            if want_weights else None
        self.device.conv_backward_weights(self.plan, images, rows, weight_diff, bias_diff)

    def accumulate_bias_diff(self, top):
        for t in top:
            self.device.channel_sum(t.dev_diff, self.blobs[1].dev_diff,
                                    t.count // (self.num * self.num_output))


@register('Convolution')
class ConvolutionLayer(LoweredConvolution):
    """Caffe's Convolution layer, lowered over batch partitions (see the module docstring)."""

    def output_hw(self, in_hw):
        g = self.geometry
        return tuple(conv_out_size(in_hw[i], g.kernel[i], g.stride[i], g.pad[i], g.dilation[i])
                     for i in range(2))

    def forward(self, bottom, top):
        bias = self.blobs[1].dev_data if self.bias_term else None
        for b, t in zip(bottom, top):
            self.forward_gemm(self.image_view(b.dev_data), self.col_side_view(t.dev_data), bias)

    def backward(self, top, propagate_down, bottom):
        want_w = self.param_propagate_down[0]
        want_bias = self.bias_term and self.param_propagate_down[1]
        for t, down, b in zip(top, propagate_down, bottom):
            top_diff = self.col_side_view(t.dev_diff)
            if want_w or want_bias:
                self.weight_gemm(self.image_view(b.dev_data), top_diff, want_w,
                                 self.blobs[1].dev_diff if want_bias else None)
            if down:
                self.backward_gemm(top_diff, self.image_view(b.dev_diff))
