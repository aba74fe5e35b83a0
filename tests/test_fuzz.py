"""Fuzzing bad input through cct (hypothesis, a fixed number of derandomized examples): mutated prototxt
text, mutated caffemodel bytes and random layer geometries go through net building, forward and
backward in a child process, many cases per child. The only allowed outcomes are success or cct's own
errors (cct.errors, all ValueErrors or, for allocations, MemoryErrors) and plain ValueErrors
(cct.testing.isolated.ALLOWED_ERRORS); any other exception, a signal or a hang fails, naming the case.

The child's address space is capped (3 GiB), so a mutated size fails to allocate instead of being
paged in; each test's cases are drawn the same way on every run (derandomize), so CI is repeatable.
"""
import pytest

hypothesis = pytest.importorskip('hypothesis')
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cct.testing.isolated import run_cases  # noqa: E402

# No shrinking: a failure already names its case, and shrinking would rerun children for minutes.
FUZZ = settings(max_examples=2, derandomize=True, deadline=None, database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck))
CASES_PER_CHILD = 40
# Few threads, so that the capped address space is not spent on per-thread arenas and buffers on
# a many-core machine.
THREADS = {'OMP_NUM_THREADS': '2', 'OPENBLAS_NUM_THREADS': '1'}

CHILD = '''
import resource
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
import os, tempfile
from cct.net import Net
from cct.proto import caffe_pb2

def write(data, suffix):
    mode = 'wb' if isinstance(data, bytes) else 'w'
    with tempfile.NamedTemporaryFile(mode, suffix=suffix, delete=False) as f:
        f.write(data)
    return f.name

def run_case(case):
    net_path = write(case['net'], '.prototxt')
    weights = write(bytes.fromhex(case['weights']), '.caffemodel') if 'weights' in case else None
    try:
        net = Net(net_path, caffe_pb2.TRAIN)
        if weights:
            net.copy_from(weights)
        net.forward()
        net.backward()
    finally:
        os.unlink(net_path)
        if weights:
            os.unlink(weights)
'''

NET = '''name: "fuzz"
force_backward: true
layer { name: "data" type: "Input" top: "data" top: "label"
  input_param { shape { dim: 2 dim: 3 dim: 9 dim: 9 } shape { dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3 stride: 1 pad: 1 dilation: 1 group: 1
    weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 0 } }
layer { name: "norm" type: "LRN" bottom: "pool" top: "norm" lrn_param { local_size: 3 } }
layer { name: "up" type: "Deconvolution" bottom: "norm" top: "up"
  convolution_param { num_output: 2 kernel_size: 2 stride: 2 weight_filler { type: "gaussian" } } }
layer { name: "ip" type: "InnerProduct" bottom: "up" top: "ip"
  inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
'''

# Numbers that have broken parsers and kernels: zero, signs, the edges of int32 and uint32.
NUMBERS = st.sampled_from(['0', '1', '2', '3', '5', '-1', '-3', '65535', '65536', '1000000000',
                           '2147483647', '2147483648', '4294967295', '4294967296', '1e9', '0.5'])


@st.composite
def mutated_text(draw):
    """The net above with a few edits: a number replaced, a span deleted or duplicated, a token
    inserted."""
    text = NET
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(['number'] * 4 + ['delete', 'duplicate', 'insert']))
        at = draw(st.integers(0, len(text) - 1))
        if kind == 'number':
            digits = [i for i, c in enumerate(text) if c.isdigit() and not text[i - 1].isdigit()]
            at = digits[draw(st.integers(0, len(digits) - 1))]
            end = at
            while end < len(text) and (text[end].isdigit() or text[end] == '.'):
                end += 1
            text = text[:at] + draw(NUMBERS) + text[end:]
        elif kind == 'delete':
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
        elif kind == 'duplicate':
            text = text[:at] + text[at:at + draw(st.integers(1, 40))] + text[at:]
        else:
            token = draw(st.sampled_from(['}', '{', '"', ' top: "data"', ' bottom: "loss"',
                                          ' dim: 0', ' kernel_size: 0', ' pad: 7',
                                          ' type: "Pooling"', ' group: 2', ' axis: -1']))
            text = text[:at] + token + text[at:]
    return text


@given(st.lists(mutated_text(), min_size=CASES_PER_CHILD, max_size=CASES_PER_CHILD))
@FUZZ
def test_mutated_prototxt(texts):
    check(run_cases(CHILD, [{'net': text} for text in texts], timeout=240, env=THREADS),
          texts)


def trained_weights():
    """The bytes of a caffemodel of NET (made once, in this process)."""
    import os
    import tempfile
    from cct.net import Net
    from cct.proto import caffe_pb2
    if not hasattr(trained_weights, 'data'):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, 'net.prototxt')
            with open(path, 'w') as f:
                f.write(NET)
            Net(path, caffe_pb2.TRAIN).save(os.path.join(directory, 'net.caffemodel'))
            with open(os.path.join(directory, 'net.caffemodel'), 'rb') as f:
                trained_weights.data = f.read()
    return trained_weights.data


@st.composite
def mutated_weights(draw):
    """The caffemodel's bytes with a few bytes replaced, a span cut out, or a prefix kept."""
    data = bytearray(trained_weights())
    kind = draw(st.sampled_from(['bytes', 'bytes', 'cut', 'prefix']))
    if kind == 'bytes':
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif kind == 'cut':
        at = draw(st.integers(0, len(data) - 1))
        del data[at:at + draw(st.integers(1, 64))]
    else:
        data = data[:draw(st.integers(0, len(data) - 1))]
    return bytes(data).hex()


@given(st.lists(mutated_weights(), min_size=CASES_PER_CHILD, max_size=CASES_PER_CHILD))
@FUZZ
def test_mutated_caffemodel(weights):
    check(run_cases(CHILD, [{'net': NET, 'weights': w} for w in weights], timeout=240,
                    env=THREADS), weights)


SIZE = st.one_of(st.integers(1, 12), st.integers(1, 12), st.integers(1, 12), st.just(0))
# Mostly small legal values (pad and dilation beyond the input included), now and then an edge.
GEOMETRY_VALUE = st.one_of(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9),
                           st.sampled_from([0, 2147483647, 4294967295]))


@st.composite
def geometry_net(draw):
    """One vision layer with random geometry over a random small input."""
    channels = draw(st.one_of(*[st.integers(1, 4)] * 7, st.just(0)))
    height, width = draw(SIZE), draw(SIZE)
    kind = draw(st.sampled_from(['Convolution', 'Deconvolution', 'Im2col', 'Pooling', 'LRN',
                                 'SPP']))
    value = lambda name: ' %s: %d' % (name, draw(GEOMETRY_VALUE))   # noqa: E731
    fields = ''.join(value(name) for name, chance in (('kernel_size', 9), ('stride', 2),
                                                      ('pad', 2))
                     if draw(st.integers(0, 9)) < chance)
    if kind in ('Convolution', 'Deconvolution', 'Im2col'):
        fields += value('dilation') if draw(st.booleans()) else ''
        if kind != 'Im2col':
            fields += ' num_output: %d group: %d' % (draw(st.one_of(*[st.integers(1, 6)] * 7,
                                                                    st.just(0))),
                                                     draw(SIZE) % 3)
        layer = 'convolution_param {%s weight_filler { type: "gaussian" } }' % fields
    elif kind == 'Pooling':
        method = draw(st.sampled_from(['MAX', 'AVE', 'STOCHASTIC']))
        layer = 'pooling_param { pool: %s%s%s }' % (
            method, fields, ' global_pooling: true' if draw(st.booleans()) else '')
    elif kind == 'LRN':
        layer = 'lrn_param {%s norm_region: %s }' % (
            value('local_size'), draw(st.sampled_from(['ACROSS_CHANNELS', 'WITHIN_CHANNEL'])))
    else:
        layer = 'spp_param { pyramid_height: %d pool: %s }' % (
            draw(st.integers(0, 5)), draw(st.sampled_from(['MAX', 'AVE'])))
    return ('force_backward: true\nlayer { name: "data" type: "Input" top: "data" input_param { '
            'shape { dim: 2 dim: %d dim: %d dim: %d } } }\nlayer { name: "under_test" type: "%s" '
            'bottom: "data" top: "out" %s }\n' % (channels, height, width, kind, layer))


@given(st.lists(geometry_net(), min_size=CASES_PER_CHILD, max_size=CASES_PER_CHILD))
@FUZZ
def test_random_layer_geometry(texts):
    outcomes = run_cases(CHILD, [{'net': text} for text in texts], timeout=240, env=THREADS)
    check(outcomes, texts)


def check(outcomes, cases):
    for case, outcome in zip(cases, outcomes):
        assert outcome is None or outcome[1], 'not one of cct\'s errors:\n%s\n%s' % (
            case, outcome[2])
