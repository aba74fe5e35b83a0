"""A least-squares problem small enough to compute Caffe's updates by hand: Input (x, y) ->
InnerProduct (weights W, bias b) -> EuclideanLoss, with fixed data, and its exact gradients."""
import numpy as np
import pytest

from cct.io import parse_text
from cct.proto import caffe_pb2

NET = '''
name: "least_squares"
layer { name: "data" type: "Input" top: "x" top: "y"
        input_param { shape { dim: %(n)d dim: 3 } shape { dim: %(n)d dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
        param { lr_mult: %(w_lr)g decay_mult: %(w_decay)g }
        param { lr_mult: %(b_lr)g decay_mult: %(b_decay)g }
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "uniform" min: -0.5 max: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }
'''

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5], [-1.0, 1.0, 0.75], [0.2, -0.3, 0.1],
              [1.0, 2.0, -1.5], [-0.5, -0.25, 0.5], [0.3, 0.6, -0.9], [2.0, -1.0, 0.0]])
Y = np.array([[1.0, -0.5], [0.25, 2.0], [-1.5, 0.5], [0.0, 1.0],
              [2.0, -1.0], [0.5, 0.5], [-0.25, 0.75], [1.0, -2.0]])


def net_param(n=4, w_lr=1, w_decay=1, b_lr=2, b_decay=0):
    return parse_text(NET % dict(n=n, w_lr=w_lr, w_decay=w_decay, b_lr=b_lr, b_decay=b_decay),
                      caffe_pb2.NetParameter())


def solver_param(text, n=4, **mults):
    """A SolverParameter from ``text`` whose net_param is the least-squares net."""
    param = parse_text(text, caffe_pb2.SolverParameter())
    param.net_param.CopyFrom(net_param(n, **mults))
    return param


def feed(net, rows=slice(0, 4)):
    net.blobs['x'].data[...] = X[rows]
    net.blobs['y'].data[...] = Y[rows]


def gradients(w, b, x=X[:4], y=Y[:4]):
    """(dL/dW, dL/db) of EuclideanLoss 1/(2N) sum((xW^T + b - y)^2)."""
    residual = (x @ w.T + b - y) / len(x)
    return residual.T @ x, residual.sum(axis=0)


@pytest.fixture
def make_solver(tmp_path):
    """make_solver(cls, text, **mults): a float64 solver on the least-squares net, data fed."""
    def make(cls, text, dtype=np.float64, **mults):
        param = solver_param(text, **mults)
        if not param.HasField('snapshot_prefix'):
            param.snapshot_prefix = str(tmp_path / 'ls')
        solver = cls(param, dtype=dtype)
        feed(solver.net)
        for test_net in solver.test_nets:
            feed(test_net)
        return solver
    return make
