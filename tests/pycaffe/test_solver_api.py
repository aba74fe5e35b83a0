"""pycaffe's Solver surface through ``import cct as caffe`` and prototxt files: ``net``, ``test_nets``,
``iter``, ``param``, ``lr``, ``step``, ``add_callback`` (when on_start and on_gradients_ready run),
``apply_update`` in a hand-written loop, ``snapshot``, ``restore``, ``solve(resume_file)`` and
``share_weights``."""
import os

import numpy as np
import pytest

import cct as caffe

NET = """name: 'softmax_regression'
layer { name: 'data' type: 'Input' top: 'data' top: 'label'
        input_param { shape { dim: 8 dim: 4 } shape { dim: 8 } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
        inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 0.3 } } }
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }
layer { name: 'accuracy' type: 'Accuracy' bottom: 'ip' bottom: 'label' top: 'accuracy'
        include { phase: TEST } }
"""

RNG = np.random.default_rng(0)
DATA = RNG.standard_normal((32, 4)).astype(np.float32)
LABELS = DATA[:, :3].argmax(axis=1).astype(np.float32)


def write_solver(tmp_path, extra='', name='solver', seed=4):
    net_path = tmp_path / 'net.prototxt'
    net_path.write_text(NET)
    path = tmp_path / ('%s.prototxt' % name)
    path.write_text('net: "%s"\nbase_lr: 0.5\nlr_policy: "fixed"\nmax_iter: 6\nrandom_seed: %d\n'
                    'snapshot_prefix: "%s"\n%s\n' % (net_path, seed, tmp_path / name, extra))
    return str(path)


def feeder(solver):
    """An on_start callback feeding the next 8 items to the train net, as pycaffe scripts do."""
    def on_start():
        start = solver.iter * 8 % len(DATA)
        solver.net.blobs['data'].data[...] = DATA[start:start + 8]
        solver.net.blobs['label'].data[...] = LABELS[start:start + 8]
    return on_start


def fed_solver(path):
    solver = caffe.get_solver(path)
    solver.add_callback(feeder(solver), lambda: None)
    for net in solver.test_nets:
        net.blobs['data'].data[...] = DATA[:8]
        net.blobs['label'].data[...] = LABELS[:8]
    return solver


def weights(solver):
    return [blob.data.copy() for blob in solver.net.params['ip']]


def test_attributes(tmp_path):
    solver = caffe.SGDSolver(write_solver(tmp_path, 'test_iter: 1 test_interval: 3'))
    assert isinstance(solver.net, caffe.Net) and solver.net.phase == caffe.TRAIN
    assert list(solver.net.blobs) == ['data', 'label', 'ip', 'loss']
    assert len(solver.test_nets) == 1 and solver.test_nets[0].phase == caffe.TEST
    assert 'accuracy' in solver.test_nets[0].outputs
    # As in Caffe, a test net takes the train net's weights at its first test, not before.
    test_ip, train_ip = solver.test_nets[0].params['ip'][0], solver.net.params['ip'][0]
    assert not test_ip.shares_data_with(train_ip)
    solver.test_nets[0].blobs['data'].data[...] = DATA[:8]
    solver.step(1)
    assert test_ip.shares_data_with(train_ip) and solver.iter == 1
    solver = caffe.SGDSolver(write_solver(tmp_path))
    assert solver.test_nets == []
    assert solver.iter == 0 and solver.param.max_iter == 6 and solver.lr == 0.5
    solver.param.base_lr = 0.25
    assert solver.lr == 0.25


def test_callbacks_run_after_testing_and_around_forward_backward(tmp_path):
    solver = caffe.get_solver(write_solver(tmp_path, 'test_iter: 1 test_interval: 2'))
    events = []
    solver.test_nets[0].before_forward(lambda i: i == 0 and events.append('test'))
    solver.net.before_forward(lambda i: i == 0 and events.append('forward'))
    seen = {}

    def on_start():
        events.append('start')
        # Caffe clears the diffs before testing and on_start; this batch is the one trained on.
        assert all((blob.diff == 0).all() for blob in solver.net.params['ip'])
        feeder(solver)()

    def on_gradients_ready():
        events.append('ready')
        seen['weights'] = weights(solver)
        seen['diffs'] = [blob.diff.copy() for blob in solver.net.params['ip']]

    solver.add_callback(on_start, on_gradients_ready)
    solver.add_callback(lambda: events.append('start 2'), lambda: events.append('ready 2'))
    for it in range(3):
        solver.step(1)
        # No momentum or decay: the update is exactly lr times the gradient the callback saw.
        for before, diff, after in zip(seen['weights'], seen['diffs'], weights(solver)):
            assert diff.any()
            np.testing.assert_allclose(after, before - np.float32(0.5) * diff, rtol=1e-6)
        start = it * 8
        assert (solver.net.blobs['data'].data == DATA[start:start + 8]).all()
    per_iter = ['start', 'start 2', 'forward', 'ready', 'ready 2']
    assert events == ['test'] + per_iter + per_iter + ['test'] + per_iter


def test_apply_update_in_a_hand_written_loop_equals_step(tmp_path):
    extra = 'momentum: 0.9 weight_decay: 0.01'
    stepped = fed_solver(write_solver(tmp_path, extra, 'a'))
    stepped.step(3)
    manual = caffe.get_solver(write_solver(tmp_path, extra, 'b'))
    for it in range(3):
        manual.net.clear_param_diffs()
        manual.net.blobs['data'].data[...] = DATA[it * 8:it * 8 + 8]
        manual.net.blobs['label'].data[...] = LABELS[it * 8:it * 8 + 8]
        manual.net.forward()
        manual.net.backward()
        manual.apply_update()
    assert manual.iter == 0  # as in Caffe, Step (not ApplyUpdate) counts iterations
    for mine, theirs in zip(weights(manual), weights(stepped)):
        np.testing.assert_array_equal(mine, theirs)


def test_snapshot_restore_and_solve_with_resume_file(tmp_path):
    extra = 'momentum: 0.9'
    straight = fed_solver(write_solver(tmp_path, extra, 'straight'))
    straight.step(3)
    straight.snapshot()
    assert {'straight_iter_3.caffemodel', 'straight_iter_3.solverstate'} <= \
        set(os.listdir(tmp_path))
    straight.solve()
    assert straight.iter == 6

    restored = fed_solver(write_solver(tmp_path, extra, 'restored', seed=9))
    restored.restore(str(tmp_path / 'straight_iter_3.solverstate'))
    assert restored.iter == 3
    restored.step(3)
    resumed = fed_solver(write_solver(tmp_path, extra, 'resumed'))
    resumed.solve(str(tmp_path / 'straight_iter_3.solverstate'))
    assert resumed.iter == 6
    # Momentum history came back too: both end bit-identical to the straight run.
    for other in (restored, resumed):
        for mine, theirs in zip(weights(other), weights(straight)):
            np.testing.assert_array_equal(mine, theirs)
    # solve() snapshots at the end (snapshot_after_train).
    assert 'resumed_iter_6.caffemodel' in os.listdir(tmp_path)
    final = caffe.Net(str(tmp_path / 'net.prototxt'), str(tmp_path / 'resumed_iter_6.caffemodel'),
                      caffe.TEST)
    np.testing.assert_array_equal(final.params['ip'][0].data, weights(straight)[0])


def test_share_weights_and_a_trained_test_net(tmp_path):
    solver = fed_solver(write_solver(tmp_path, 'test_iter: 1 test_interval: 100'))
    deploy = caffe.Net(str(tmp_path / 'net.prototxt'), caffe.TEST)
    solver.share_weights(deploy)
    before = solver.test_nets[0].forward()['accuracy'].copy()
    solver.step(40)
    assert deploy.params['ip'][0].shares_data_with(solver.net.params['ip'][0])
    out = deploy.forward(data=DATA[:8], label=LABELS[:8])
    assert float(out['accuracy']) > float(before)
    assert float(out['accuracy']) == pytest.approx(float(solver.test_nets[0].forward()['accuracy']))
