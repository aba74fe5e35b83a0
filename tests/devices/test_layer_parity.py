"""Every layer on each accelerator (OpenCL; CUDA where a GPU is): forward and backward equal the
CPU's (float64 1e-10, float32 1e-4, relative), the shared gradient checker passes on the device, and
the layers that cannot run there say so by name when built."""
import numpy as np
import pytest

from cct.errors import DeviceError
from cct.proto import caffe_pb2
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker
from opencl_support import DTYPES, assert_close

CONV = 'convolution_param { num_output: 4 kernel_size: 3 pad: 1 stride: %d group: 2 ' \
    'weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.3 } }'

# id: (layer prototxt, bottom shapes, tops, labels bottom index or None, checker kwargs or None)
CASES = {
    'convolution': ('type: "Convolution" ' + CONV % 1, [(2, 4, 5, 5)], 1, None, {}),
    'convolution_strided': ('type: "Convolution" ' + CONV % 2, [(2, 4, 6, 5)], 1, None, {}),
    'convolution_dilated': ('type: "Convolution" convolution_param { num_output: 3 '
                            'kernel_h: 3 kernel_w: 2 dilation: 2 pad: 1 weight_filler { '
                            'type: "gaussian" std: 0.3 } }', [(2, 2, 7, 6)], 1, None, {}),
    'deconvolution': ('type: "Deconvolution" ' + CONV % 2, [(2, 4, 3, 3)], 1, None, {}),
    # Two channels in two groups (a multiplier of 2): the CPU's direct depthwise kernels.
    'convolution_depthwise': ('type: "Convolution" ' + CONV % 2, [(2, 2, 6, 5)], 1, None, {}),
    'inner_product': ('type: "InnerProduct" inner_product_param { num_output: 5 weight_filler {'
                      ' type: "gaussian" std: 0.3 } bias_filler { type: "gaussian" std: 0.3 } }',
                      [(3, 2, 2, 3)], 1, None, {}),
    'inner_product_transposed': ('type: "InnerProduct" inner_product_param { num_output: 4 '
                                 'transpose: true weight_filler { type: "gaussian" std: 0.3 } '
                                 'bias_term: false }', [(3, 6)], 1, None, {}),
    'max_pool': ('type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }',
                 [(2, 3, 7, 6)], 1, None, {}),
    'max_pool_argmax': ('type: "Pooling" pooling_param { pool: MAX kernel_size: 2 stride: 2 }',
                        [(2, 2, 5, 4)], 2, None, None),
    'ave_pool': ('type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }',
                 [(2, 3, 7, 6)], 1, None, {}),
    'global_pool': ('type: "Pooling" pooling_param { pool: AVE global_pooling: true }',
                    [(2, 3, 4, 5)], 1, None, {}),
    'lrn_across': ('type: "LRN" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 }',
                   [(2, 5, 3, 3)], 1, None, {}),
    'lrn_within': ('type: "LRN" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 '
                   'norm_region: WITHIN_CHANNEL }', [(2, 2, 4, 4)], 1, None, {}),
    'relu': ('type: "ReLU"', [(2, 3, 4)], 1, None, {'kink_range': 0.01}),
    'leaky_relu': ('type: "ReLU" relu_param { negative_slope: 0.1 }', [(2, 3, 4)], 1, None,
                   {'kink_range': 0.01}),
    'sigmoid': ('type: "Sigmoid"', [(2, 3, 4)], 1, None, {}),
    'tanh': ('type: "TanH"', [(2, 3, 4)], 1, None, {}),
    'absval': ('type: "AbsVal"', [(2, 3, 4)], 1, None, {'kink_range': 0.01}),
    'bnll': ('type: "BNLL"', [(2, 3, 4)], 1, None, {}),
    'elu': ('type: "ELU" elu_param { alpha: 0.5 }', [(2, 3, 4)], 1, None, {'kink_range': 0.01}),
    'swish': ('type: "Swish" swish_param { beta: 1.5 }', [(2, 3, 4)], 1, None, {}),
    'clip': ('type: "Clip" clip_param { min: -0.5 max: 0.7 }', [(2, 3, 4)], 1, None, None),
    'threshold': ('type: "Threshold" threshold_param { threshold: 0.2 }', [(2, 3, 4)], 1, None,
                  None),
    'dropout_test': ('type: "Dropout" phase: TEST dropout_param { dropout_ratio: 0.3 }',
                     [(2, 3, 4)], 1, None, {}),
    'softmax': ('type: "Softmax"', [(3, 4, 2)], 1, None, {}),
    'softmax_axis2': ('type: "Softmax" softmax_param { axis: 2 }', [(2, 3, 4)], 1, None, {}),
    'softmax_loss': ('type: "SoftmaxWithLoss"', [(4, 5), (4,)], 1, 1, {}),
    'softmax_loss_ignore': ('type: "SoftmaxWithLoss" loss_param { ignore_label: 2 } '
                            'softmax_param { axis: 1 }', [(2, 4, 3), (2, 3)], 1, 1, {}),
    'split': ('type: "Split"', [(2, 3)], 2, None, {}),
    'flatten': ('type: "Flatten"', [(2, 3, 2)], 1, None, {}),
    'reshape': ('type: "Reshape" reshape_param { shape { dim: 0 dim: -1 } }', [(2, 3, 2)], 1,
                None, {}),
    'concat': ('type: "Concat" concat_param { axis: 1 }', [(2, 3, 2), (2, 1, 2)], 1, None, {}),
    'slice': ('type: "Slice" slice_param { axis: 1 slice_point: 1 }', [(2, 4, 3)], 2, None, {}),
    'eltwise_sum': ('type: "Eltwise" eltwise_param { operation: SUM coeff: 0.5 coeff: -2 }',
                    [(2, 3), (2, 3)], 1, None, {}),
    'power': ('type: "Power" power_param { power: 2 scale: 0.5 shift: 1 }', [(2, 3, 4)], 1,
              None, {}),
    'power_cube': ('type: "Power" power_param { power: 3 scale: -0.7 shift: 0.4 }', [(2, 5)],
                   1, None, {}),
    'exp': ('type: "Exp" exp_param { base: 2 scale: 0.5 shift: 0.3 }', [(2, 3, 4)], 1, None,
            {}),
    'log': ('type: "Log" log_param { base: 10 scale: 0.5 shift: 4 }', [(2, 3, 4)], 1, None, {}),
    'scale': ('type: "Scale" scale_param { axis: 1 num_axes: 1 bias_term: true filler { '
              'type: "gaussian" } bias_filler { type: "gaussian" } }', [(2, 3, 4)], 1, None, {}),
    'scale_bottom': ('type: "Scale" scale_param { axis: 0 }', [(2, 3, 4), (2, 3)], 1, None, {}),
    'bias': ('type: "Bias" bias_param { axis: 1 num_axes: 2 filler { type: "gaussian" } }',
             [(2, 3, 4, 2)], 1, None, {}),
    'batch_norm': ('type: "BatchNorm"', [(4, 3, 2, 2)], 1, None, {}),
    'batch_norm_global': ('type: "BatchNorm" batch_norm_param { use_global_stats: true }',
                          [(3, 2, 3)], 1, None, None),
    'mvn': ('type: "MVN"', [(2, 3, 4, 3)], 1, None, {}),
    'mvn_across': ('type: "MVN" mvn_param { across_channels: true normalize_variance: false }',
                   [(2, 3, 2, 2)], 1, None, {}),
    'prelu': ('type: "PReLU" prelu_param { filler { type: "uniform" min: 0.1 max: 0.5 } }',
              [(2, 3, 2, 2)], 1, None, {'kink_range': 0.01}),
    'prelu_shared': ('type: "PReLU" prelu_param { channel_shared: true }', [(2, 3, 4)], 1,
                     None, {'kink_range': 0.01}),
    'eltwise_max': ('type: "Eltwise" eltwise_param { operation: MAX }',
                    [(2, 3, 4), (2, 3, 4), (2, 3, 4)], 1, None, {}),
    'sigmoid_cross_entropy': ('type: "SigmoidCrossEntropyLoss"', [(3, 4), (3, 4)], 1, 1, {}),
    'tile': ('type: "Tile" tile_param { axis: 1 tiles: 3 }', [(2, 2, 3)], 1, None, {}),
    'tile_last_axis': ('type: "Tile" tile_param { axis: -1 tiles: 9 }', [(2, 3, 1)], 1, None,
                       {}),
    'reduction_sum': ('type: "Reduction" reduction_param { axis: 1 coeff: 0.5 }', [(2, 3, 4)],
                      1, None, {}),
    'reduction_mean': ('type: "Reduction" reduction_param { operation: MEAN }', [(2, 3)], 1,
                       None, {}),
    'reduction_asum': ('type: "Reduction" reduction_param { operation: ASUM axis: 2 }',
                       [(2, 3, 4)], 1, None, {'kink_range': 0.01}),
    'crop': ('type: "Crop" crop_param { axis: 2 offset: 1 offset: 2 }',
             [(2, 3, 5, 6), (2, 3, 3, 2)], 1, 1, {}),
    'embed': ('type: "Embed" embed_param { num_output: 3 input_dim: 4 weight_filler { type: '
              '"gaussian" } bias_filler { type: "gaussian" } }', [(4, 2)], 1, 0, {}),
    'filter': ('type: "Filter"', [(4, 3, 2), (4,)], 1, 1, {}),
    'batch_reindex': ('type: "BatchReindex"', [(4, 3, 2), (5,)], 1, 1, {}),
    'im2col': ('type: "Im2col" convolution_param { kernel_size: 3 stride: 2 pad: 1 }',
               [(3, 2, 5, 4)], 1, None, {}),
    'spp': ('type: "SPP" spp_param { pyramid_height: 3 pool: MAX }', [(2, 3, 7, 6)], 1, None,
            {}),
    'spp_ave': ('type: "SPP" spp_param { pyramid_height: 2 pool: AVE }', [(2, 2, 5, 4)], 1,
                None, {}),
    'reduction_sumsq': ('type: "Reduction" reduction_param { operation: SUMSQ axis: 1 '
                        'coeff: 0.5 }', [(2, 3, 4)], 1, None, {}),
    'reduction_sumsq_all': ('type: "Reduction" reduction_param { operation: SUMSQ }', [(3, 5)],
                            1, None, {}),
    'eltwise_prod_quotient': ('type: "Eltwise" eltwise_param { operation: PROD '
                              'stable_prod_grad: false }', [(2, 3), (2, 3), (2, 3)], 1, None,
                              {}),
    # Similarity labels in {0, 1, 2} (non-zero is similar); the margins leave three dissimilar
    # pairs inside (gradient) and one outside (none), each 0.1 or more from the kink. Caffe's test
    # threshold: the 1e-4 in the dissimilar gradient's divisor costs the finite differences some
    # accuracy (as in tests/layers/test_distance_loss.py).
    'contrastive_loss': ('type: "ContrastiveLoss" contrastive_loss_param { margin: 2 }',
                         [(10, 3), (10, 3), (10,)], 1, 2, {'threshold': 1e-2}),
    'contrastive_loss_legacy': ('type: "ContrastiveLoss" contrastive_loss_param { margin: 4 '
                                'legacy_version: true }',
                                [(10, 3, 1, 1), (10, 3, 1, 1), (10, 1, 1, 1)], 1, 2,
                                {'threshold': 1e-2}),
    # Layers Caffe runs on the host in GPU mode (no GPU code): cct's host layers, through syncs.
    'argmax': ('type: "ArgMax" argmax_param { top_k: 2 out_max_val: true }', [(3, 5)], 1, None,
               None),
    'accuracy': ('type: "Accuracy" accuracy_param { top_k: 2 }', [(6, 4), (6,)], 1, 1, None),
    'hinge_loss': ('type: "HingeLoss"', [(4, 5), (4,)], 1, 1, {}),
    'eltwise_prod': ('type: "Eltwise" eltwise_param { operation: PROD }',
                     [(2, 3), (2, 3), (2, 3)], 1, None, {}),
}


def _bottoms(shapes, labels, dtype, classes=None):
    gen = np.random.default_rng(7)
    data = [gen.standard_normal(shape) for shape in shapes]
    if labels is not None:
        classes = shapes[0][1]
        data[labels] = gen.integers(0, classes, shapes[labels]).astype(np.float64)
    return [d.astype(dtype) for d in data]


def _pair(cpu, accel, case, dtype, phase=caffe_pb2.TRAIN):
    text, shapes, tops, labels, _ = CASES[case]
    data = _bottoms(shapes, labels, dtype)
    made = [make_layer(text, shapes, num_top=tops, dtype=dtype, bottom_data=data, device=d,
                       phase=phase) for d in (cpu, accel)]
    for mine, theirs in zip(made[0][0].blobs, made[1][0].blobs):
        theirs.data[...] = mine.data
    return made


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('case', sorted(CASES))
def test_forward_and_backward_equal_the_cpu(cpu, accel, case, dtype):
    (layer, bottom, top), (device_layer, device_bottom, device_top) = _pair(cpu, accel, case, dtype)
    labels = CASES[case][3]
    for lay, b, t in ((layer, bottom, top), (device_layer, device_bottom, device_top)):
        lay.run_forward(b, t)
    for mine, theirs in zip(top, device_top):
        assert mine.shape == theirs.shape
        assert_close(theirs.data, mine.data, dtype)
    if case in ('threshold', 'max_pool_argmax', 'argmax', 'accuracy'):
        return
    gen = np.random.default_rng(3)
    for mine, theirs in zip(top, device_top):
        if not layer.loss_layer:
            mine.diff[...] = gen.standard_normal(mine.shape)
            theirs.diff[...] = mine.diff
    down = [i != labels for i in range(len(bottom))]
    layer.backward(top, down, bottom)
    device_layer.backward(device_top, down, device_bottom)
    for i, (mine, theirs) in enumerate(zip(bottom, device_bottom)):
        if down[i]:
            assert_close(theirs.diff, mine.diff, dtype)
    for mine, theirs in zip(layer.blobs, device_layer.blobs):
        assert_close(theirs.diff, mine.diff, dtype)


@pytest.mark.parametrize('case', sorted(name for name, spec in CASES.items()
                                        if spec[4] is not None))
def test_gradient_checker_passes_on_opencl(accel, case):
    text, shapes, tops, labels, options = CASES[case]
    layer, bottom, top = make_layer(text, shapes, num_top=tops, dtype=np.float64,
                                    bottom_data=_bottoms(shapes, labels, np.float64), device=accel)
    checker = GradientChecker(**{'stepsize': 1e-3 if 'softmax' in case else 1e-2,
                                 'threshold': 1e-3, **options})
    check = [i for i in range(len(shapes)) if i != labels]
    checker.check(layer, bottom, top, check_bottom=check)


@pytest.mark.parametrize('dtype', DTYPES)
def test_dropout_in_train_keeps_one_mask_on_opencl(accel, dtype):
    """Masks come from the device's generator (not the CPU's bits): every output is 0 or x/(1-p),
    about 1-p of them kept, and the backward reuses the forward's mask."""
    layer, bottom, top = make_layer('type: "Dropout" dropout_param { dropout_ratio: 0.3 }',
                                    [(40, 50)], dtype=dtype, device=accel, seed=2)
    layer.run_forward(bottom, top)
    x, y = bottom[0].data.copy(), top[0].data.copy()
    kept = y != 0
    assert_close(y[kept], x[kept] * layer.scale, dtype)   # 1/(1 - ratio), ratio a float
    assert 0.65 < kept.mean() < 0.75
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    assert_close(bottom[0].diff, kept * layer.scale, dtype)


def test_stochastic_pooling_in_train_samples_window_values_on_opencl(accel):
    layer, bottom, top = make_layer('type: "Pooling" pooling_param { pool: STOCHASTIC '
                                    'kernel_size: 2 stride: 2 }', [(2, 3, 6, 6)],
                                    dtype=np.float64, device=accel,
                                    bottom_data=[np.random.default_rng(5).random((2, 3, 6, 6))])
    layer.run_forward(bottom, top)
    x = bottom[0].data.reshape(2, 3, 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5).reshape(2, 3, 3, 3, 4)
    y = top[0].data
    assert np.all(np.any(np.abs(x - y[..., None]) == 0, axis=-1))   # each output is a window value
    top[0].diff[...] = 1
    layer.backward(top, [True], bottom)
    grads = bottom[0].diff.reshape(2, 3, 3, 2, 3, 2).transpose(0, 1, 2, 4, 3, 5).reshape(
        2, 3, 3, 3, 4)
    assert np.all(grads.sum(axis=-1) == 1)                          # routed to one position
    picked = np.take_along_axis(x, grads.argmax(axis=-1)[..., None], axis=-1)[..., 0]
    np.testing.assert_array_equal(picked, y)                        # the one it sampled
