"""Bad geometry (cct/layers/geometry.py and the layers that use it) is refused when the net is built,
naming the layer and the field, where it used to crash the process (SIGFPE, SIGSEGV) or end in a raw
Python error; and the Cython kernels refuse such arguments themselves (cct/kernels/bounds.pxd).
Every net is built, run forward and backward in a child process, so a crash fails the case."""
import numpy as np
import pytest

from cct import kernels
from cct.kernels import lrn as lrn_kernels
from cct.testing.isolated import run_cases

INPUT = ('layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: %d '
         'dim: 8 dim: 8 } } }\n')


def conv(params, kind='Convolution'):
    return ('layer { name: "c" type: "%s" bottom: "data" top: "c" convolution_param { '
            'num_output: 4 %s } }' % (kind, params))


def pool(params):
    return ('layer { name: "p" type: "Pooling" bottom: "data" top: "p" pooling_param { %s } }'
            % params)


# (layer text, input channels, what the error must say); each was a crash or a raw error before.
BAD = {
    'dilation 0 (SIGFPE)': (conv('kernel_size: 3 dilation: 0'), 3,
                            "layer 'c' (type Convolution): dilation must be positive"),
    'deconvolution dilation 0': (conv('kernel_size: 3 dilation: 0', 'Deconvolution'), 3,
                                 "layer 'c' (type Deconvolution): dilation must be positive"),
    'im2col dilation 0': ('layer { name: "i" type: "Im2col" bottom: "data" top: "i" '
                          'convolution_param { kernel_size: 3 dilation: 0 } }', 3,
                          "layer 'i' (type Im2col): dilation must be positive"),
    'convolution stride beyond int': (conv('kernel_size: 3 stride: 4000000000'), 3,
                                      'stride 4000000000 is out of range (at most 2147483647'),
    'convolution pad beyond int': (conv('kernel_size: 3 pad: 3000000000'), 3,
                                   'pad 3000000000 is out of range'),
    'convolution reach beyond int': (conv('kernel_size: 3 dilation: 1000000000 pad: 1000000000 '
                                          'stride: 2000000000'), 3,
                                     "layer 'c' (type Convolution): the input height (8) with pad "
                                     '1000000000, a window of 2000000001 and stride 2000000000 '
                                     'reaches 6000000009, beyond a C int'),
    'dilated kernel beyond int': (conv('kernel_size: 3 dilation: 2000000000'), 3,
                                  'the dilated kernel (kernel_size 3, dilation 2000000000) spans'),
    'zero input channels': (conv('kernel_size: 3'), 0,
                            "Layer 'c' (type Convolution): the input (shape (2, 0, 8, 8)) has no "
                            'channels'),
    'pooling stride 0 (ZeroDivisionError)': (pool('pool: MAX kernel_size: 3 stride: 0'), 3,
                                             "layer 'p' (type Pooling): stride must be positive"),
    'pooling stride beyond int': (pool('pool: MAX kernel_size: 3 stride: 4000000000'), 3,
                                  'stride 4000000000 is out of range'),
    'pooling kernel beyond int': (pool('pool: MAX kernel_size: 4000000000'), 3,
                                  'kernel_size 4000000000 is out of range'),
    'pooling reach beyond int (SIGSEGV in backward)': (
        pool('pool: AVE kernel_size: 2147483647 pad: 2147483646 stride: 2147483647'), 3,
        "layer 'p' (type Pooling): the input height (8) with pad 2147483646"),
    'pooling stride near INT_MAX': (pool('pool: MAX kernel_size: 2 stride: 2147483647'), 3,
                                    'beyond a C int'),
    'LRN local_size beyond int': ('layer { name: "n" type: "LRN" bottom: "data" top: "n" '
                                  'lrn_param { local_size: 4000000001 } }', 3,
                                  "layer 'n' (type LRN): local_size 4000000001 is out of range"),
    'blob count beyond int64': (None, 3, "Layer 'data' (type Input): blob dimensions "
                                '(4294967296, 4294967296, 4294967296, 8) hold'),
    'in-place pooling': ('layer { name: "p" type: "Pooling" bottom: "data" top: "data" '
                         'pooling_param { pool: MAX kernel_size: 2 stride: 2 } }', 3,
                         "Layer 'p' (type Pooling): does not allow in-place computation"),
}

# Large but legal: must still build and run (windows wider than the image, empty last windows).
GOOD = {
    'AVE kernel far wider than the image': (pool('pool: AVE kernel_size: 1000000000 '
                                                 'pad: 500000000'), 3),
    'MAX stride larger than the kernel': (pool('pool: MAX kernel_size: 2 stride: 5'), 3),
    'dilation and pad beyond the input': (conv('kernel_size: 3 dilation: 6 pad: 6'), 3),
}

CHILD = '''
from cct.net import Net
from cct.proto import caffe_pb2

def run_case(text):
    import os, tempfile
    with tempfile.NamedTemporaryFile('w', suffix='.prototxt', delete=False) as f:
        f.write(text)
    try:
        net = Net(f.name, caffe_pb2.TRAIN)
    finally:
        os.unlink(f.name)
    net.forward()
    net.backward()
'''


def net_text(layer, channels):
    if layer is None:
        return ('force_backward: true\nlayer { name: "data" type: "Input" top: "data" input_param '
                '{ shape { dim: 4294967296 dim: 4294967296 dim: 4294967296 dim: 8 } } }\n')
    return 'force_backward: true\n' + INPUT % channels + layer + '\n'


def test_bad_geometry_is_refused_at_build_naming_layer_and_field():
    names = list(BAD)
    outcomes = run_cases(CHILD, [net_text(*BAD[name][:2]) for name in names])
    for name, outcome in zip(names, outcomes):
        assert outcome is not None, name
        kind, allowed, message = outcome
        assert allowed and kind == 'NetError', (name, outcome)
        assert BAD[name][2] in message, (name, message)


def test_large_legal_geometry_still_runs():
    names = list(GOOD)
    outcomes = run_cases(CHILD, [net_text(*GOOD[name]) for name in names])
    assert dict(zip(names, outcomes)) == dict.fromkeys(names)


def test_kernels_refuse_crash_prone_arguments():
    """Called directly (bypassing the layers), each kernel raises instead of indexing out of its
    arrays."""
    image = np.zeros((1, 1, 8, 8), np.float32)
    top = np.zeros((1, 1, 4, 4), np.float32)
    mask = np.zeros((1, 1, 4, 4), np.uint16)
    with pytest.raises(ValueError, match='bad height geometry'):
        kernels.max_pool_forward(image, top, mask, 2, 2, 0, 0, 0, 2)
    with pytest.raises(ValueError, match='reaches beyond a C int'):
        kernels.ave_pool_forward(image, top, 2 ** 31 - 1, 2, 0, 0, 2, 2)
    with pytest.raises(ValueError, match=r'\(at most -5\)'):
        kernels.ave_pool_backward(top, image, 20, 2, 0, 0, 2, 2)    # 4 windows of 20 over 8
    with pytest.raises(ValueError, match='the pooled blob has 2 x 1 planes'):
        kernels.max_pool_forward(image, np.zeros((2, 1, 4, 4), np.float32),
                                 np.zeros((2, 1, 4, 4), np.uint16), 2, 2, 0, 0, 2, 2)
    with pytest.raises(ValueError, match='argmaxes lie outside planes'):
        kernels.max_pool_backward(top, np.full((1, 1, 4, 4), 64, np.uint16), image)
    with pytest.raises(ValueError, match='16-bit argmaxes'):
        kernels.max_pool_forward(np.zeros((1, 1, 256, 256), np.float32), top, mask, 64, 64, 0, 0,
                                 64, 64)
    with pytest.raises(ValueError, match='at most'):
        kernels.stochastic_pool_forward_test(image, np.zeros((1, 1, 9, 9), np.float32), 2, 2, 1, 1)
    col = np.zeros((9, 36), np.float32)
    with pytest.raises(ValueError, match='bad height geometry'):
        kernels.im2col(image, col, 3, 3, 0, 0, 1, 1, 0, 1, 6, 6)
    with pytest.raises(ValueError, match=r'7 output height values .* \(expected 6\)'):
        kernels.im2col(image, col, 3, 3, 0, 0, 1, 1, 1, 1, 7, 6)
    with pytest.raises(ValueError, match='local_size must be odd and positive'):
        lrn_kernels.within_channel_scale(image, image.copy(), image.copy(), 0, 1.0)
    with pytest.raises(ValueError, match='arrays of shape'):
        lrn_kernels.within_channel_scale(image, top, image.copy(), 3, 1.0)


def test_cct_info_names_the_layer_and_field(tmp_path):
    """`cct info` builds the net: a dilation of 0 (SIGFPE before) is one error line, status 1."""
    import subprocess
    import sys
    path = tmp_path / 'dilation0.prototxt'
    path.write_text(net_text(*BAD['dilation 0 (SIGFPE)'][:2]))
    done = subprocess.run([sys.executable, '-m', 'cct.cli', 'info', str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ''
    assert done.stderr.splitlines() == [
        "cct info: error: layer 'c' (type Convolution): dilation must be positive, got [0, 0]"]
