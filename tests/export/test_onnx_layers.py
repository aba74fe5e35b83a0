"""Each exported layer, and each Caffe quirk the export spells out, against cct's forward in ONNX
Runtime: pooling sizes where ceil and floor rounding differ, a last window dropped in the padding,
AVE's divisor at padded borders, LRN within a channel, BatchNorm's scale factor (0 included),
grouped, dilated and asymmetric convolutions, and every other converter, at batch 1 from a
fixed-batch export and at batches 1 and 3 from a dynamic-batch export."""
import numpy as np
import onnx
import pytest

from onnx_helpers import assert_matches, net_from_text, randomize


def _net_text(inputs, body):
    tops = ''.join(' top: "%s"' % name for name in inputs)
    shapes = ''.join(' shape { %s }' % ' '.join('dim: %d' % d for d in shape)
                     for shape in inputs.values())
    return 'name: "t" layer { name: "in" type: "Input"%s input_param {%s } }\n%s' % (
        tops, shapes, body)


def _layer(kind, bottoms='x', tops='y', params='', name=None):
    name = name or (tops.split() or [kind])[0]
    bottoms = ''.join(' bottom: "%s"' % b for b in bottoms.split())
    tops = ''.join(' top: "%s"' % t for t in tops.split())
    return 'layer { name: "%s" type: "%s"%s%s %s }\n' % (name, kind, bottoms, tops, params)


X4 = {'x': (1, 4, 9, 9)}

POOLING = {
    # ceil((8 - 3) / 2) + 1 = 4 windows; floor rounding would give 3.
    'max_ceil': ({'x': (1, 2, 8, 8)}, 'pooling_param { pool: MAX kernel_size: 3 stride: 2 }'),
    'ave_ceil': ({'x': (1, 2, 8, 8)}, 'pooling_param { pool: AVE kernel_size: 3 stride: 2 }'),
    # AVE with padding: border windows count padding cells, the last one not the cells beyond it.
    'ave_pad_border': ({'x': (1, 2, 8, 8)},
                       'pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }'),
    'ave_pad_7': ({'x': (1, 2, 7, 7)},
                  'pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }'),
    # ceil gives 5 windows; the fifth would start in the padding, so Caffe drops it.
    'max_dropped_window': ({'x': (1, 2, 6, 6)},
                           'pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 2 }'),
    'ave_dropped_window': ({'x': (1, 2, 6, 6)},
                           'pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 2 }'),
    # Stride 3 over kernel 2: the last window lies wholly beyond the image (Caffe: -FLT_MAX).
    'max_empty_window': ({'x': (1, 2, 6, 6)},
                         'pooling_param { pool: MAX kernel_size: 2 stride: 3 }'),
    'asymmetric': ({'x': (1, 2, 9, 7)}, 'pooling_param { pool: AVE kernel_h: 3 kernel_w: 2 '
                   'stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 1 }'),
    'max_asymmetric': ({'x': (1, 2, 9, 7)}, 'pooling_param { pool: MAX kernel_h: 3 kernel_w: 2 '
                       'stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 1 }'),
    'global_max': ({'x': (1, 3, 5, 4)}, 'pooling_param { pool: MAX global_pooling: true }'),
    'global_ave': ({'x': (1, 3, 5, 4)}, 'pooling_param { pool: AVE global_pooling: true }'),
    'floor_mode': ({'x': (1, 2, 8, 8)},
                   'pooling_param { pool: AVE kernel_size: 3 stride: 2 round_mode: FLOOR }'),
}

CASES = {'pool_' + name: (inputs, _layer('Pooling', params=params))
         for name, (inputs, params) in POOLING.items()}
CASES.update({
    'lrn_within_channel': (X4, _layer('LRN', params='lrn_param { local_size: 5 alpha: 0.3 '
                                      'beta: 0.75 norm_region: WITHIN_CHANNEL }')),
    'lrn_across_channels': ({'x': (1, 7, 5, 5)}, _layer('LRN', params='lrn_param { local_size: 3 '
                                                        'alpha: 0.4 beta: 0.6 k: 2 }')),
    'conv_grouped': (X4, _layer('Convolution', params='convolution_param { num_output: 6 '
                                'kernel_size: 3 group: 2 pad: 1 }')),
    'conv_dilated': (X4, _layer('Convolution', params='convolution_param { num_output: 3 '
                                'kernel_size: 3 dilation: 2 stride: 2 }')),
    'conv_asymmetric': (X4, _layer('Convolution', params='convolution_param { num_output: 3 '
                                   'kernel_h: 3 kernel_w: 1 stride_h: 2 stride_w: 1 pad_h: 1 '
                                   'pad_w: 0 bias_term: false }')),
    'deconv_grouped': (X4, _layer('Deconvolution', params='convolution_param { num_output: 6 '
                                  'kernel_size: 4 stride: 2 pad: 1 group: 2 }')),
    'deconv_dilated': (X4, _layer('Deconvolution', params='convolution_param { num_output: 2 '
                                  'kernel_size: 3 dilation: 2 }')),
    'batch_norm': (X4, _layer('BatchNorm', params='batch_norm_param { eps: 0.001 }')),
    'batch_norm_2d': ({'x': (1, 5)}, _layer('BatchNorm')),
    'batch_norm_batch_statistics': ({'x': (1, 3, 4, 2)}, _layer(
        'BatchNorm', params='batch_norm_param { use_global_stats: false eps: 0.01 }')),
    'batch_norm_scale': (X4, _layer('BatchNorm', tops='y') +
                         _layer('Scale', bottoms='y', tops='y',
                                params='scale_param { bias_term: true }')),
    'inner_product_axis2': ({'x': (1, 3, 4, 5)}, _layer('InnerProduct', params=
                            'inner_product_param { num_output: 6 axis: 2 }')),
    'inner_product_transpose': (X4, _layer('InnerProduct', params='inner_product_param { '
                                           'num_output: 5 transpose: true bias_term: false }')),
    'relu_slope': (X4, _layer('ReLU', params='relu_param { negative_slope: 0.1 }')),
    'relu_in_place': (X4, _layer('Power', tops='y') + _layer('ReLU', bottoms='y', tops='y')),
    'prelu': (X4, _layer('PReLU')),
    'prelu_shared': (X4, _layer('PReLU', params='prelu_param { channel_shared: true }')),
    'elu': (X4, _layer('ELU', params='elu_param { alpha: 0.5 }')),
    'sigmoid_tanh_abs': (X4, _layer('Sigmoid', tops='s') + _layer('TanH', tops='t') +
                         _layer('AbsVal', tops='a')),
    'power': (X4, _layer('Power', params='power_param { power: 2 scale: 0.5 shift: 1 }')),
    'power_fractional': (X4, _layer('Power', params='power_param { power: 1.5 scale: 0.25 '
                                    'shift: 3 }')),
    'power_affine': (X4, _layer('Power', params='power_param { scale: -2 shift: 1 }')),
    'power_constant': (X4, _layer('Power', params='power_param { power: 0 }')),
    'exp': (X4, _layer('Exp', params='exp_param { base: 2 scale: 0.5 shift: 1 }')),
    'log': (X4, _layer('AbsVal', tops='a') +
            _layer('Log', bottoms='a', params='log_param { base: 10 scale: 2 shift: 0.5 }')),
    'bnll_large': (X4, _layer('Power', tops='big', params='power_param { scale: 40 }') +
                   _layer('BNLL', bottoms='big')),
    'clip': (X4, _layer('Clip', params='clip_param { min: -0.5 max: 0.7 }')),
    'clip_crossed_bounds': (X4, _layer('Clip', params='clip_param { min: 0.5 max: -0.2 }')),
    'swish': (X4, _layer('Swish', params='swish_param { beta: 1.5 }')),
    'threshold': (X4, _layer('Threshold', params='threshold_param { threshold: 0.2 }')),
    'silence': ({'x': (1, 3), 'z': (1, 2)}, _layer('Silence', bottoms='z', tops='') +
                _layer('ReLU')),
    'dropout': (X4, _layer('Dropout', tops='x') + _layer('ReLU', bottoms='x', tops='y')),
    'scale_learned': (X4, _layer('Scale', params='scale_param { bias_term: true }')),
    'scale_two_axes': (X4, _layer('Scale', params='scale_param { axis: 2 num_axes: 2 }')),
    'scale_scalar': (X4, _layer('Scale', params='scale_param { num_axes: 0 }')),
    # A second bottom starting at axis 0 carries the batch (the exported Reshape keeps it).
    'scale_bottom': ({'x': (1, 4, 3, 3), 's': (1, 4)}, _layer(
        'Scale', bottoms='x s', params='scale_param { axis: 0 }')),
    'bias': (X4, _layer('Bias', params='bias_param { axis: 1 num_axes: 1 }')),
    'bias_bottom': ({'x': (1, 4, 3, 3), 'b': (1, 4, 3)}, _layer(
        'Bias', bottoms='x b', params='bias_param { axis: 0 }')),
    'eltwise_sum_coeff': ({'x': (1, 3, 4), 'z': (1, 3, 4), 'w': (1, 3, 4)},
                          _layer('Eltwise', bottoms='x z w', params='eltwise_param { '
                                 'operation: SUM coeff: 1 coeff: -0.5 coeff: 2 }')),
    'eltwise_prod_max': ({'x': (1, 3, 4), 'z': (1, 3, 4)},
                         _layer('Eltwise', bottoms='x z', tops='p',
                                params='eltwise_param { operation: PROD }') +
                         _layer('Eltwise', bottoms='x z', tops='m',
                                params='eltwise_param { operation: MAX }')),
    'concat_slice': ({'x': (1, 3, 4, 2), 'z': (1, 2, 4, 2)},
                     _layer('Concat', bottoms='x z', tops='c') +
                     _layer('Slice', bottoms='c', tops='s1 s2 s3',
                            params='slice_param { axis: 1 slice_point: 1 slice_point: 4 }') +
                     _layer('Concat', bottoms='x x', tops='c2', params='concat_param { axis: 2 }')
                     + _layer('Slice', bottoms='c2', tops='h1 h2',
                              params='slice_param { axis: 2 }')),
    'split_outputs': (X4, _layer('Split', tops='y1 y2')),
    'flatten_reshape': ({'x': (1, 4, 3, 2)},
                        _layer('Flatten', tops='f', params='flatten_param { axis: 1 end_axis: 2 }')
                        + _layer('Reshape', bottoms='f', tops='r', params='reshape_param { shape '
                                 '{ dim: 0 dim: 2 dim: -1 } }') +
                        _layer('Reshape', bottoms='x', tops='r2', params='reshape_param { axis: 1 '
                               'num_axes: 2 shape { dim: 3 dim: 4 } }')),
    'crop': ({'x': (1, 3, 9, 8), 'ref': (1, 3, 5, 4)},
             _layer('Crop', bottoms='x ref', params='crop_param { axis: 2 offset: 3 offset: 1 }')),
    'softmax_axis2': ({'x': (1, 3, 5, 2)}, _layer('Softmax', params='softmax_param { axis: 2 }')),
    'reductions': ({'x': (1, 3, 4, 2)},
                   _layer('Reduction', tops='sum', params='reduction_param { axis: 1 }') +
                   _layer('Reduction', tops='asum', params='reduction_param { operation: ASUM '
                          'axis: 2 coeff: 0.5 }') +
                   _layer('Reduction', tops='sumsq', params='reduction_param { operation: SUMSQ '
                          'axis: -1 }') +
                   _layer('Reduction', tops='mean', params='reduction_param { operation: MEAN '
                          'axis: 1 coeff: -2 }')),
    'tile': ({'x': (1, 3, 2)}, _layer('Tile', params='tile_param { axis: 1 tiles: 3 }')),
    'mvn': (X4, _layer('MVN', tops='m1') +
            _layer('MVN', tops='m2', params='mvn_param { across_channels: true eps: 0.01 }') +
            _layer('MVN', tops='m3', params='mvn_param { normalize_variance: false }')),
    'mvn_2d': ({'x': (1, 6)}, _layer('MVN', params='mvn_param { across_channels: true }')),
})


@pytest.mark.parametrize('case', sorted(CASES))
def test_layer_exports_exactly(tmp_path, case):
    inputs, body = CASES[case]
    net = randomize(net_from_text(_net_text(inputs, body)))
    if case == 'batch_norm_2d':
        net.layers[1].blobs[2].data[...] = 0   # scale factor 0: zero mean and variance
    net.export_onnx(tmp_path / 'fixed.onnx')
    assert_matches(net, tmp_path / 'fixed.onnx', [1])
    net.export_onnx(tmp_path / 'dynamic.onnx', dynamic_batch=True)
    assert_matches(net, tmp_path / 'dynamic.onnx', [1, 3], seed=2)


def test_scale_bottom_with_learned_bias(tmp_path):
    # The learned bias takes the second bottom's shape, batch axis included: a fixed batch only.
    net = randomize(net_from_text(_net_text({'x': (2, 4, 3), 's': (2, 4)}, _layer(
        'Scale', bottoms='x s', params='scale_param { axis: 0 bias_term: true }'))))
    net.export_onnx(tmp_path / 'scale.onnx')
    assert_matches(net, tmp_path / 'scale.onnx', [2])


def _small_integers(net, high):
    def feeds(batch, rng):
        return {name: rng.integers(0, high, size=(batch,) + net.blobs[name].shape[1:])
                .astype(np.float32) for name in net.inputs}
    return feeds


@pytest.mark.parametrize('params', [
    'top_k: 1', 'top_k: 3', 'top_k: 2 out_max_val: true', 'top_k: 2 axis: 1',
    'top_k: 2 axis: -1 out_max_val: true'])
def test_argmax_ranks_ties_as_caffe(tmp_path, params):
    # Values drawn from {0, 1, 2}: ties everywhere, and Caffe's highest index wins each.
    net = net_from_text(_net_text({'x': (1, 5, 3)}, _layer('ArgMax', params='argmax_param { %s }'
                                                            % params)))
    net.export_onnx(tmp_path / 'argmax.onnx', dynamic_batch=True)
    assert_matches(net, tmp_path / 'argmax.onnx', [1, 3], feeds_for=_small_integers(net, 3))


def test_embed_gathers_rows(tmp_path):
    net = randomize(net_from_text(_net_text({'x': (1, 4)}, _layer(
        'Embed', params='embed_param { num_output: 3 input_dim: 7 }'))))
    net.export_onnx(tmp_path / 'embed.onnx', dynamic_batch=True)
    assert_matches(net, tmp_path / 'embed.onnx', [1, 3], feeds_for=_small_integers(net, 7))



CONV_BN_SCALE = (_layer('Convolution', tops='c', params='convolution_param { num_output: 3 '
                        'kernel_size: 3 group: 1 }') +
                 _layer('BatchNorm', bottoms='c', tops='n') +
                 _layer('Scale', bottoms='n', tops='n', params='scale_param { bias_term: true }'))


@pytest.mark.parametrize('extra, op_types', [
    # BatchNorm then Scale fold into the convolution's weights and bias.
    ('', ['Conv']),
    # The convolution's output is read elsewhere too: the four steps become one Mul and one Add.
    (_layer('ReLU', bottoms='c', tops='r'), ['Conv', 'Mul', 'Add', 'Relu']),
    # Bias after an InnerProduct folds into the Gemm's bias.
    (_layer('InnerProduct', bottoms='n', tops='ip', params='inner_product_param '
            '{ num_output: 4 }') + _layer('Bias', bottoms='ip', tops='ip'), ['Conv', 'Flatten',
                                                                               'Gemm']),
])
def test_affine_steps_fold_exactly(tmp_path, extra, op_types):
    net = randomize(net_from_text(_net_text(X4, CONV_BN_SCALE + extra)))
    net.export_onnx(tmp_path / 'folded.onnx', dynamic_batch=True)
    assert [n.op_type for n in onnx.load(str(tmp_path / 'folded.onnx')).graph.node] == op_types
    assert_matches(net, tmp_path / 'folded.onnx', [1, 3])


@pytest.mark.parametrize('opset', [13, 18, 21])
def test_opset_dependent_spellings(tmp_path, opset):
    # Reductions take axes as an attribute or an input depending on the opset (ReduceSum from 13,
    # the others from 18); Split, Slice, Pad and TopK read their sizes from inputs.
    cases = ['reductions', 'mvn', 'batch_norm_batch_statistics', 'concat_slice',
             'pool_max_empty_window', 'pool_ave_pad_border']
    for case in cases:
        inputs, body = CASES[case]
        net = randomize(net_from_text(_net_text(inputs, body)))
        path = tmp_path / ('%s.onnx' % case)
        net.export_onnx(path, opset=opset, dynamic_batch=True)
        assert onnx.load(str(path)).opset_import[0].version == opset
        assert_matches(net, path, [2])
