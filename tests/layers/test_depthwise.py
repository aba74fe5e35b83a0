"""Depthwise convolutions on the CPU: when the plan takes the direct kernels (depthwise.pyx), their
gradients against finite differences, their numbers against the GEMM lowerings' (Caffe's
computation), their independence of the thread count and their argument checks.
tests/layers/test_convolution_random.py runs them over random geometries against a direct
convolution, guarded."""
import os
import subprocess
import sys

import numpy as np
import pytest

import cct
from cct import kernels, workspace
from cct.testing import make_layer
from cct.testing.gradcheck import GradientChecker

FILLERS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" }'
DIRECT = workspace.Lowering('direct', 'direct', 'direct')


def layer_of(kind, params, shape, **kwargs):
    return make_layer('type: "%s" convolution_param { %s %s }' % (kind, params, FILLERS),
                      [shape], **kwargs)


@pytest.mark.parametrize('kind, params, shape, direct', [
    ('Convolution', 'num_output: 8 kernel_size: 3 pad: 1 group: 8', (2, 8, 7, 7), True),
    ('Convolution', 'num_output: 16 kernel_size: 3 stride: 2 group: 8', (2, 8, 7, 7), True),
    ('Convolution', 'num_output: 6 kernel_h: 1 kernel_w: 5 group: 3', (2, 3, 7, 7), True),
    ('Deconvolution', 'num_output: 4 kernel_size: 3 stride: 2 group: 4', (2, 8, 5, 5), True),
    # Groups of two channels, or one group (LeNet's single-channel conv1): the lowerings.
    ('Convolution', 'num_output: 8 kernel_size: 3 group: 4', (2, 8, 7, 7), False),
    ('Convolution', 'num_output: 20 kernel_size: 5', (2, 1, 12, 12), False),
    # Deconvolution lowers its top: groups of one *output* channel are its depthwise case.
    ('Deconvolution', 'num_output: 8 kernel_size: 3 group: 4', (2, 4, 5, 5), False),
])
def test_the_plan_takes_the_direct_kernels_for_depthwise_products(kind, params, shape, direct):
    layer, _, _ = layer_of(kind, params, shape, dtype=np.float32)
    assert (layer.lowering == DIRECT) == direct, layer.lowering


def test_forced_lowerings_and_the_switch_keep_the_gemms(monkeypatch):
    """CCT_LOWERING=full|rows|panels forces that lowering on every layer, depthwise ones too; so
    does CCT_DEPTHWISE=0 under 'auto' (Caffe's GEMM per channel, for comparisons)."""
    params, shape = 'num_output: 8 kernel_size: 3 pad: 1 group: 8', (2, 8, 7, 7)
    monkeypatch.setattr(workspace, 'LOWERING', 'full')
    assert layer_of('Convolution', params, shape)[0].lowering == \
        workspace.Lowering('full', 'full', 'full')
    monkeypatch.setattr(workspace, 'LOWERING', 'auto')
    monkeypatch.setattr(workspace, 'DEPTHWISE', False)
    assert 'direct' not in layer_of('Convolution', params, shape)[0].lowering


@pytest.mark.parametrize('kind, params, shape', [
    ('Convolution', 'num_output: 6 kernel_size: 3 pad: 1 group: 3', (2, 3, 5, 6)),
    ('Convolution', 'num_output: 4 kernel_size: 3 stride: 2 pad: 1 dilation: 2 group: 2',
     (2, 2, 7, 6)),
    ('Convolution', 'num_output: 3 kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 3 '
     'group: 3', (1, 3, 4, 5)),
    ('Deconvolution', 'num_output: 2 kernel_size: 3 stride: 2 pad: 1 group: 2', (2, 4, 3, 3)),
])
def test_gradients(kind, params, shape):
    """Data, weight and bias gradients against finite differences (float64), with stride 1 (the
    data gradient as a correlation), 2 (a scatter), padding beyond the kernel's reach, and
    channel multipliers of 2 for Convolution and Deconvolution."""
    layer, bottom, top = layer_of(kind, params, shape, seed=5)
    assert layer.lowering == DIRECT
    GradientChecker(1e-2, 1e-3).check(layer, bottom, top)


def run(kind, params, shape, seed):
    """Forward and backward of a float32 layer with fixed weights and top diff: [top, bottom
    diff, weight diff, bias diff]."""
    layer, bottom, top = layer_of(kind, params, shape, dtype=np.float32, seed=seed)
    rng = np.random.default_rng(seed)
    layer.blobs[0].data[...] = rng.standard_normal(layer.blobs[0].shape)
    layer.blobs[1].data[...] = rng.standard_normal(layer.blobs[1].shape)
    layer.forward(bottom, top)
    top[0].diff[...] = rng.standard_normal(top[0].shape)
    for blob in layer.blobs:
        blob.diff[...] = 0
    layer.backward(top, [True], bottom)
    return layer.lowering, [top[0].data.copy(), bottom[0].diff.copy(), layer.blobs[0].diff.copy(),
                            layer.blobs[1].diff.copy()]


@pytest.mark.parametrize('params, shape', [
    ('num_output: 32 kernel_size: 3 pad: 1 group: 32', (8, 32, 14, 14)),
    ('num_output: 32 kernel_size: 3 pad: 1 stride: 2 group: 32', (8, 32, 28, 28)),
    ('num_output: 16 kernel_size: 3 pad: 1 group: 16', (4, 16, 56, 56)),
    ('num_output: 32 kernel_size: 5 pad: 2 group: 16', (4, 16, 9, 9)),
])
def test_float32_numbers_are_the_lowerings_up_to_rounding(params, shape, monkeypatch):
    """MobileNet's shapes in float32: the direct kernels and Caffe's GEMM per channel sum the same
    products in another order, so they agree to float32 rounding of sums of up to 8*56*56
    terms (the weight gradient's)."""
    lowering, direct = run('Convolution', params, shape, seed=7)
    assert lowering == DIRECT
    monkeypatch.setattr(workspace, 'DEPTHWISE', False)
    lowering, gemm = run('Convolution', params, shape, seed=7)
    assert 'direct' not in lowering
    for name, a, b in zip(['top', 'bottom diff', 'weight diff', 'bias diff'], direct, gemm):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max(), err_msg=name)


THREADS_CHILD = '''
import hashlib
import numpy as np
from cct import rng
from cct.testing import make_layer
rng.set_random_seed(11)    # the fillers' draws
digest = hashlib.sha256()
for params, shape in [('num_output: 16 kernel_size: 3 pad: 1 group: 8', (5, 8, 14, 13)),
                      ('num_output: 8 kernel_size: 3 pad: 1 stride: 2 group: 8', (3, 8, 13, 40)),
                      ('num_output: 6 kernel_size: 3 pad: 3 stride: 2 group: 6', (2, 6, 9, 9))]:
    layer, bottom, top = make_layer('type: "Convolution" convolution_param { %s weight_filler { '
                                    'type: "gaussian" } bias_filler { type: "gaussian" } }'
                                    % params, [shape], dtype=np.float32, seed=3)
    assert layer.lowering.forward == 'direct'
    layer.forward(bottom, top)
    top[0].diff[...] = np.random.default_rng(4).standard_normal(top[0].shape)
    layer.backward(top, [True], bottom)
    for array in (top[0].data, bottom[0].diff, layer.blobs[0].diff, layer.blobs[1].diff):
        digest.update(np.ascontiguousarray(array).tobytes())
print(digest.hexdigest())
'''


def test_results_do_not_depend_on_the_thread_count():
    """Forward, data, weight and bias gradients bit for bit the same with 1 and 3 threads
    (every plane and every output channel's sums belong to one thread), with stride 1, 2 (long
    rows: per-column weight sums) and padding beyond the kernel's reach (the scattered data
    gradient)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(cct.__file__)))
    digests = []
    for threads in ('1', '3'):
        env = dict(os.environ, OMP_NUM_THREADS=threads, PYTHONPATH=root)
        result = subprocess.run([sys.executable, '-c', THREADS_CHILD], env=env, timeout=120,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        digests.append(result.stdout.strip())
    assert digests[0] == digests[1]


def test_kernels_check_their_arguments():
    """Shapes that disagree, or scratch too small, raise ValueError naming the kernel before any
    loop runs."""
    geometry = (3, 3, 1, 1, 1, 1, 1, 1, 5, 5)
    images = np.zeros((2, 4, 5, 5))
    out = np.zeros((2, 8, 25))
    weights = np.zeros((8, 9))
    none = np.zeros(0)
    scratch = np.zeros((kernels.max_threads(), kernels.depthwise_scratch(geometry, 5, 5)))
    kernels.depthwise_forward(images, weights, none, out, geometry, scratch)
    with pytest.raises(ValueError, match='depthwise_forward: weights have 8 columns'):
        kernels.depthwise_forward(images, np.zeros((8, 8)), none, out, geometry, scratch)
    with pytest.raises(ValueError, match='depthwise_forward: 6 weight rows for 4 channels'):
        kernels.depthwise_forward(images, np.zeros((6, 9)), none, np.zeros((2, 6, 25)),
                                  geometry, scratch)
    with pytest.raises(ValueError, match='the column side is'):
        kernels.depthwise_forward(images, weights, none, np.zeros((2, 8, 24)), geometry, scratch)
    with pytest.raises(ValueError, match='the scratch needs'):
        kernels.depthwise_forward(images, weights, none, out, geometry,
                                  np.zeros((kernels.max_threads(), 10)))
    with pytest.raises(ValueError, match='bias has 3 values for 8 outputs'):
        kernels.depthwise_forward(images, weights, np.zeros(3), out, geometry, scratch)
    with pytest.raises(ValueError, match='6 output height values'):
        kernels.depthwise_forward(images, weights, none, out, (3, 3, 1, 1, 1, 1, 1, 1, 6, 5),
                                  scratch)
    with pytest.raises(ValueError, match='the flipped weights need 72 values'):
        kernels.depthwise_backward_data(out, weights, none, images, geometry, np.zeros(9),
                                        scratch)
    with pytest.raises(ValueError, match='bias_diff has 2 values for 8 outputs'):
        kernels.depthwise_weight_grad(images, out, np.zeros((8, 9)), np.zeros(2), True,
                                      geometry, scratch)
