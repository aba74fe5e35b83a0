"""The CPU device's convolution: Caffe con Troll's partitions and cct's three lowerings (full, rows,
panels; cct/kernels/lowering.pyx), one chosen per product by ``workspace.choose_lowering``.

Caffe lowers and multiplies one image at a time on one core. Here the batch is cut into
*partitions* spread over the cores: each thread lowers a partition into its own column buffer
(rows: channel x kernel offsets, columns: image x output pixel) and runs one GEMM per group over it.
``workspace.partition_size`` picks the smallest partition whose GEMMs are still large, so the
columns stay in cache. Layers with vertical stride 1 may instead lower only the horizontal taps of
each image and run one GEMM per kernel row on windows of that buffer (the *row lowering*, a kh-th
of the lowering traffic), or lay that buffer out in panels of one vector of output columns for
cct's own register-blocked kernels (the *panel lowering*: no BLAS packing, all kernel rows summed
in registers).
Depthwise products (every group one image-side channel: MobileNet's) skip the lowering: under the
'auto' policy they run cct/kernels/depthwise.pyx's direct loops over the planes (``direct``).
"""
from cct import kernels, workspace
from cct.devices.base import ConvPlan


class CPUConvPlan(ConvPlan):
    """A ConvPlan with the CPU's choices: ``lowering`` (a ``workspace.Lowering``: full, rows,
    panels or, for depthwise products, direct), the CcT ``partition`` and, for panels, the
    kernels' ``panel_sizes``."""


def plan(num, image_channels, image_hw, col_channels, col_hw, group, kernel, pad, stride, dilation,
         dtype):
    p = CPUConvPlan(num, image_channels, image_hw, col_channels, col_hw, group, kernel, pad, stride,
                    dilation, dtype)
    p.partition = workspace.partition_size(
        num, p.col_rows // group * p.col_pixels * p.dtype.itemsize,
        col_channels * p.col_rows // group * p.col_pixels, kernels.max_threads(), p.col_pixels)
    p.panel_sizes = None
    if p.stride[0] == 1 and p.kernel[0] > 1:
        p.panel_sizes = kernels.panel_sizes(p.geometry(), p.image_hw[0], p.image_hw[1],
                                            image_channels // group, col_channels // group,
                                            p.dtype.itemsize)
        # Images per weight-gradient task of the panel lowering: sums over 512 pixels.
        p.panel_partition = max(1, min(-(-512 // p.col_pixels),
                                       -(-num // kernels.max_threads())))
    p.lowering = workspace.choose_lowering(p.kernel[0], p.stride[0],
                                           image_channels // group * p.kernel[1],
                                           col_channels // group, p.col_hw, p.panel_sizes)
    p.weight_count = col_channels * p.col_rows // group
    if workspace.depthwise(image_channels, group):
        p.lowering = workspace.Lowering('direct', 'direct', 'direct')
    return p


def _panel_scratch(p, purpose, values):
    return workspace.scratch(purpose, (kernels.max_threads(), values), p.dtype)


def _packed_weights(p):
    size = max(p.panel_sizes['forward_weights'], p.panel_sizes['backward_weights'])
    return workspace.scratch('packed_weights', (p.group * size,), p.dtype)


def _depthwise_scratch(p):
    return workspace.scratch('col', (kernels.max_threads(), kernels.depthwise_scratch(
        p.geometry(), p.image_hw[0], p.image_hw[1])), p.dtype)


def _scratch(p, method):
    threads = kernels.max_threads()
    if method == 'rows':
        rows = kernels.row_lowering_rows(p.geometry())
        return (workspace.scratch('col', (threads, p.image_channels // p.group * p.kernel[1] *
                                          rows * p.col_hw[1]), p.dtype),
                workspace.scratch('permuted_weights', (p.weight_count,), p.dtype))
    columns = p.partition * p.col_pixels
    return (workspace.scratch('col', (threads, p.col_rows // p.group * columns), p.dtype),
            workspace.scratch('gemm_rows', (threads, p.col_channels * columns), p.dtype))


def forward(p, images, weights, bias, out):
    """out = W * im2col(images) (+ bias) over every partition (Caffe's forward_cpu_gemm)."""
    if p.lowering.forward == 'direct':
        kernels.depthwise_forward(images, weights, bias, out, p.geometry(), _depthwise_scratch(p))
    elif p.lowering.forward == 'panels':
        kernels.panel_forward(images, weights, bias, out, p.geometry(), p.group,
                              _panel_scratch(p, 'col', p.panel_sizes['r']), _packed_weights(p))
    elif p.lowering.forward == 'rows':
        kernels.row_lowered_forward(images, weights, bias, out, p.geometry(), p.group,
                                    *_scratch(p, 'rows'))
    else:
        kernels.lowered_forward(images, weights, bias, out, p.geometry(), p.group, p.partition,
                                *_scratch(p, 'full'))


def backward_data(p, rows, weights, bias, images):
    """images = col2im(W^T * rows) (+ bias per image-side channel) (Caffe's backward_cpu_gemm)."""
    if p.lowering.data == 'direct':
        kernels.depthwise_backward_data(rows, weights, bias, images, p.geometry(),
                                        workspace.scratch('flipped_weights', (weights.size,),
                                                          p.dtype), _depthwise_scratch(p))
    elif p.lowering.data == 'panels':
        kernels.panel_backward_data(rows, weights, bias, images, p.geometry(), p.group,
                                    _panel_scratch(p, 'panel_top', p.panel_sizes['top']),
                                    _panel_scratch(p, 'panel_dr', p.panel_sizes['dr']),
                                    _packed_weights(p))
    elif p.lowering.data == 'rows':
        kernels.row_lowered_backward_data(rows, weights, bias, images, p.geometry(), p.group,
                                          *_scratch(p, 'rows'))
    else:
        kernels.lowered_backward_data(rows, weights, bias, images, p.geometry(), p.group,
                                      p.partition, *_scratch(p, 'full'))


def backward_weights(p, images, rows, weight_diff, bias_diff):
    """weight_diff += rows * im2col(images)^T (unless None); bias_diff += the sum of rows per
    column-side channel (unless empty) (Caffe's weight_cpu_gemm and backward_cpu_bias)."""
    threads = kernels.max_threads()
    want_weights = weight_diff is not None
    if not want_weights:
        weight_diff = workspace.scratch('unused_weight_diff', (p.col_channels, p.weight_count //
                                                               p.col_channels), p.dtype)
    if p.lowering.weights == 'direct':
        kernels.depthwise_weight_grad(images, rows, weight_diff, bias_diff, want_weights,
                                      p.geometry(), _depthwise_scratch(p))
        return
    sums = 0
    if want_weights:
        sums = (p.group * p.panel_sizes['weight_sums'] if p.lowering.weights == 'panels'
                else weight_diff.size)
    partials = (workspace.scratch('partial_weights', (threads, sums), p.dtype),
                workspace.scratch('partial_bias', (threads, p.col_channels), p.dtype))
    if p.lowering.weights == 'panels':
        count = p.panel_partition
        kernels.panel_weight_grad(images, rows, weight_diff, bias_diff, want_weights,
                                  p.geometry(), p.group, count,
                                  _panel_scratch(p, 'col', count * p.panel_sizes['r']),
                                  _panel_scratch(p, 'panel_top', count * p.panel_sizes['top_t']),
                                  *partials)
    elif p.lowering.weights == 'rows':
        kernels.row_lowered_weight_grad(images, rows, weight_diff, bias_diff, want_weights,
                                        p.geometry(), p.group, *_scratch(p, 'rows'), *partials)
    else:
        kernels.lowered_weight_grad(images, rows, weight_diff, bias_diff, want_weights,
                                    p.geometry(), p.group, p.partition, *_scratch(p, 'full'),
                                    *partials)
