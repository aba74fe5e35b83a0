"""The plans a Device makes once per layer shape (convolution, pooling, LRN): the shapes and settings
every device reads, to which each device adds what it decided (cct/devices/base.py documents the
calls that take them)."""
import numpy as np


class ConvPlan:
    """One convolution layer's lowering, made once at reshape by ``Device.conv_plan``.

    Caffe's terms (base_conv_layer.cpp): the *image side* is what im2col reads, ``num`` images
    of ``image_channels`` planes of ``image_hw``; the *column side* is what one GEMM per group
    produces, ``col_channels`` planes of ``col_hw`` (``col_pixels`` = out_h*out_w).
    Convolution lowers its bottom; Deconvolution lowers its top. Devices subclass this to keep
    what they decided (CPU: full/rows/panels per product and the partition size; OpenCL: the
    partition of the batch one column buffer holds).

    Attributes:
        num, image_channels, image_hw, col_channels, col_hw, group: as above.
        kernel, pad, stride, dilation: (h, w) pairs.
        dtype: numpy dtype of every array the plan's calls take.
    """

    def __init__(self, num, image_channels, image_hw, col_channels, col_hw, group, kernel, pad,
                 stride, dilation, dtype):
        self.num, self.image_channels, self.image_hw = num, image_channels, tuple(image_hw)
        self.col_channels, self.col_hw, self.group = col_channels, tuple(col_hw), group
        self.kernel, self.pad = tuple(kernel), tuple(pad)
        self.stride, self.dilation = tuple(stride), tuple(dilation)
        self.dtype = np.dtype(dtype)
        self.col_pixels = self.col_hw[0] * self.col_hw[1]
        self.col_rows = image_channels * self.kernel[0] * self.kernel[1]
        self._geometry = self.kernel + self.pad + self.stride + self.dilation + self.col_hw

    def geometry(self):
        """(kh, kw, pad_h, pad_w, stride_h, stride_w, dilation_h, dilation_w, out_h, out_w): the
        argument tuple cct's kernels take, out = the column side's size."""
        return self._geometry


class PoolPlan:
    """One pooling layer's method, geometry and buffers, made at reshape by ``Device.pool_plan``.

    Attributes:
        method: 'max', 'ave', 'stochastic_train' or 'stochastic_test'.
        kernel, pad, stride: (h, w) pairs; bottom_shape, top_shape: (N, C, H, W) tuples.
        dtype: numpy dtype of bottom and top.
    """

    def __init__(self, method, kernel, pad, stride, bottom_shape, top_shape, dtype):
        self.method, self.kernel, self.pad, self.stride = method, tuple(kernel), tuple(pad), \
            tuple(stride)
        self.bottom_shape, self.top_shape = tuple(bottom_shape), tuple(top_shape)
        self.dtype = np.dtype(dtype)


class LRNPlan:
    """One LRN layer's settings and buffers, made at reshape by ``Device.lrn_plan``.

    Attributes:
        region: 'across' (ACROSS_CHANNELS) or 'within' (WITHIN_CHANNEL).
        size, alpha, beta, k: lrn_param's values (alpha, beta, k already rounded to dtype).
        shape: (N, C, H, W); dtype: numpy dtype.
    """

    def __init__(self, region, size, alpha, beta, k, shape, dtype):
        self.region, self.size, self.alpha, self.beta, self.k = region, size, alpha, beta, k
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
