"""The parameter server and the group workers as plain Python objects (no Ray), driven the way a
simulator drives them: the server applies updates with the solver's own code."""
import logging

import numpy as np
import pytest

from cct import runtime
from cct.distributed import GroupWorker, ParameterServer
from cct.solver import get_solver

from grouped_helpers import losses, write_solver


@pytest.fixture(autouse=True)
def _single_process_rank():
    yield
    runtime.set_solver_count(1)
    runtime.set_solver_rank(0)


def run_plain(path):
    solver = get_solver(path)
    solver.solve()
    return solver


def run_server(path, groups, group_size, order=None):
    """Drive a server with ``groups`` groups of ``group_size`` in-process workers; each round
    every group reads the model, then the groups' gradients are applied in ``order``."""
    server = ParameterServer(path, path, groups=groups, group_size=group_size)
    count = groups * group_size
    workers = [[GroupWorker(server.solver.param, path, g * group_size + k, count)
                for k in range(group_size)] for g in range(groups)]
    server.start()
    results = []
    while not server.done():
        models = [server.model() for _ in range(groups)]
        parts = [[w.compute(models[g]) for w in workers[g]] for g in range(groups)]
        for g in order or range(groups):
            results.append(server.apply(g, parts[g]))
    final = np.mean([w.forward_loss(server.model()) for w in workers[0]])
    server.finish(final if server.needs_final_loss() else None)
    return server, results


def test_one_group_is_plain_training_bit_for_bit(digits, cct_log):
    path = write_solver(digits, 'plain_eq', max_iter=30, test_interval=10)
    plain = run_plain(path)
    plain_log = cct_log()
    server, results = run_server(path, 1, 1)
    server_log = cct_log()[len(plain_log):]
    assert losses(server_log) == losses(plain_log) and len(losses(plain_log)) == 4
    for a, b in zip(plain.net.learnable_params, server.solver.net.learnable_params):
        np.testing.assert_array_equal(a.data, b.data)
    for a, b in zip(plain.history, server.solver.history):
        np.testing.assert_array_equal(a, b)
    assert [r.staleness for r in results] == [0] * 30
    assert server_log.count('Test net output #0') == plain_log.count('Test net output #0') == 4


def test_group_of_two_is_the_doubled_batch(digits):
    plain = run_plain(write_solver(digits, 'double', batch_size=128, max_iter=12))
    server, _ = run_server(write_solver(digits, 'halves', batch_size=64, max_iter=12), 1, 2)
    for a, b in zip(plain.net.learnable_params, server.solver.net.learnable_params):
        # Two halves of a batch summed instead of one sum over the batch: float reordering.
        np.testing.assert_allclose(b.data, a.data, rtol=2e-4, atol=2e-6)


def test_staleness_counts_the_updates_a_gradient_missed(digits, caplog):
    caplog.set_level(logging.INFO, logger='cct')
    path = write_solver(digits, 'stale', max_iter=9, display=3, test_interval=100)
    server, results = run_server(path, 3, 1, order=[2, 0, 1])
    # All three groups read the same model, so the second and third arrivals missed 1 and 2.
    assert [r.staleness for r in results] == [0, 1, 2] * 3
    assert [r.iteration for r in results] == list(range(1, 10))
    assert server.stats.histogram == {0: 3, 1: 3, 2: 3}
    text = '\n'.join(r.getMessage() for r in caplog.records)
    assert 'Group 2: 1 updates since the last report' in text
    assert 'Group staleness histogram (staleness: updates): 0: 3, 1: 3, 2: 3' in text
    late = server.apply(0, [results and GroupWorker(server.solver.param, path, 0, 3).compute(
        server.model())])
    assert not late.applied and late.done and server.iteration == 9


def test_one_group_resumes_exactly_from_and_into_plain_snapshots(digits):
    path = write_solver(digits, 'resume', max_iter=20, snapshot=10, test_interval=100)
    straight = run_plain(path)
    state = str(digits / 'resume_iter_10.solverstate')

    def resumed_server():
        server = ParameterServer(path, path, restore=state)
        worker = GroupWorker(server.solver.param, path, 0, 1)
        worker.resume(state, server.iteration)
        server.start()
        assert server.iteration == 10
        while not server.done():
            server.apply(0, [worker.compute(server.model())])
        server.finish()
        return server
    # plain -> grouped: the worker reads on from record 640, as plain training resumes.
    server = resumed_server()
    for a, b in zip(straight.net.learnable_params, server.solver.net.learnable_params):
        np.testing.assert_array_equal(a.data, b.data)
    # grouped -> plain: the server's snapshot at 20 records the worker's read position.
    server.solver.param.max_iter = 30
    server.snapshot()
    longer = run_plain(write_solver(digits, 'resume_long', max_iter=30, snapshot=10,
                                    test_interval=100))
    plain = get_solver(path)
    plain.param.max_iter = 30
    plain.solve(str(digits / 'resume_iter_20.solverstate'))
    for a, b in zip(longer.net.learnable_params, plain.net.learnable_params):
        np.testing.assert_array_equal(a.data, b.data)


BN_SOLVER = '''
base_lr: 0.1 momentum: 0.9 lr_policy: "fixed" max_iter: 3 display: 0 random_seed: 5
snapshot_after_train: false
net_param {
  layer { name: "x" type: "DummyData" top: "x" top: "y"
          dummy_data_param { shape { dim: 8 dim: 3 } shape { dim: 8 dim: 2 }
                             data_filler { type: "gaussian" std: 2 }
                             data_filler { type: "gaussian" } } }
  layer { name: "bn" type: "BatchNorm" bottom: "x" top: "n" }
  layer { name: "ip" type: "InnerProduct" bottom: "n" top: "ip"
          inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 } } }
  layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }
}
'''


def test_batch_norm_statistics_come_back_from_the_workers():
    from cct.io import parse_text
    from cct.proto import caffe_pb2
    param = parse_text(BN_SOLVER, caffe_pb2.SolverParameter())
    plain = get_solver(param)
    plain.solve()
    server = ParameterServer(param)
    worker = GroupWorker(server.solver.param, '<bn>', 0, 1)
    server.start()
    while not server.done():
        server.apply(0, [worker.compute(server.model())])
    statistics = plain.net.layer_by_name('bn').blobs
    assert statistics[2].data[0] > 0  # the moving-average factor: the stats were accumulated
    for a, b in zip(plain.net.learnable_params, server.solver.net.learnable_params):
        np.testing.assert_array_equal(a.data, b.data)
