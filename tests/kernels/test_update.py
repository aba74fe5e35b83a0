"""The fused SGD step (cct/kernels/update.pyx) against Caffe's sequence of separate operations, bit
for bit, and SGDSolver's fused path against the generic step-by-step one."""
import numpy as np
import pytest

from cct.kernels.update import sgd_step
from cct.solver.solver import Solver
from cct.solver.sgd import SGDSolver


def caffe_sequence(data, diff, history, normalize, decay, l1, rate, momentum):
    """Normalize, Regularize, ComputeUpdateValue and Update as numpy calls, one rounding each."""
    t = data.dtype.type
    if normalize != 1:
        diff = diff * t(normalize)
    if decay:
        sign = ((data > 0).astype(data.dtype) - (data < 0)) if l1 else data
        diff = diff + sign * t(decay)
    diff = diff * t(rate)
    history = history * t(momentum) + diff
    return data - history, history.copy(), history


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('normalize, decay, l1', [(1, 0, False), (0.5, 5e-4, False),
                                                   (1, 1e-3, True), (1 / 3, 0.01, True)])
def test_fused_step_is_bit_identical_to_the_sequence(dtype, normalize, decay, l1):
    rng = np.random.default_rng(3)
    data, diff, history = (rng.standard_normal(10007).astype(dtype) for _ in range(3))
    data[:5] = 0  # sign(0) = 0 under L1
    expected = caffe_sequence(data, diff, history, normalize, decay, l1, 0.01, 0.9)
    sgd_step(data, diff, history, normalize, decay, l1, 0.01, 0.9)
    for got, want in zip((data, diff, history), expected):
        np.testing.assert_array_equal(got, want)


def test_lengths_must_agree():
    a = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match='differ in length'):
        sgd_step(a, np.zeros(3, np.float32), a.copy(), 1, 0, False, 0.1, 0.9)


@pytest.mark.parametrize('regularization', ['L2', 'L1'])
def test_solver_fused_path_equals_the_generic_path(regularization):
    from cct.proto import caffe_pb2
    from google.protobuf import text_format
    net = text_format.Parse('''
        name: "tiny"
        layer { name: "x" type: "Input" top: "x" top: "y"
                input_param { shape { dim: 6 dim: 5 } shape { dim: 6 dim: 3 } } }
        layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
                param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
                inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 }
                                      bias_filler { type: "gaussian" std: 1 } } }
        layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }
    ''', caffe_pb2.NetParameter())
    runs = []
    for generic in (False, True):
        param = caffe_pb2.SolverParameter(base_lr=0.05, momentum=0.9, weight_decay=0.01,
                                          lr_policy='fixed', iter_size=2, random_seed=7,
                                          regularization_type=regularization, display=0)
        param.train_net_param.CopyFrom(net)
        solver = SGDSolver(param)
        if generic:
            solver.update_param = lambda i, rate, s=solver: Solver.update_param(s, i, rate)
        rng = np.random.default_rng(0)
        solver.net.blobs['x'].data[...] = rng.standard_normal((6, 5))
        solver.net.blobs['y'].data[...] = rng.standard_normal((6, 3))
        solver.step(4)
        runs.append([(b.data.copy(), b.diff.copy()) for b in solver.net.learnable_params] +
                    [h.copy() for h in solver.history])
    fused, generic = runs
    for a, b in zip(fused, generic):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize('size', [0, 7, 65536 * 3 + 5])
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_zero_clears_every_element(size, dtype):
    from cct.kernels.elementwise import zero
    values = np.full(size + 2, 7, dtype)
    zero(values[1:-1])
    assert not values[1:-1].any()
    assert values[0] == values[-1] == 7
