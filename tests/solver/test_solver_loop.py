"""The shared training loop: iter_size, test nets and NetState merging, fine-tuning weights, seeds,
callbacks and action requests, Caffe's log lines, and the errors a user can run into."""
import io
import os

import numpy as np
import pytest

from cct.log import init_log
from cct.errors import CctError, SolverError
from cct.io import parse_text, write_text
from cct.proto import caffe_pb2
from cct.solver import SGDSolver, SolverAction, get_solver

from conftest import X, Y, feed, net_param, solver_param

FIXED = 'base_lr: 0.1 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.01 '


@pytest.fixture
def log_text():
    """Capture cct's log (glog format) while the test runs; call it to read the text so far."""
    stream = io.StringIO()
    init_log(0, stream)
    yield stream.getvalue
    init_log(0)


def test_iter_size_2_equals_a_batch_twice_as_large():
    big = SGDSolver(solver_param(FIXED, n=8), dtype=np.float32)
    big.net.blobs['x'].data[...] = X
    big.net.blobs['y'].data[...] = Y
    small_param = solver_param(FIXED + 'iter_size: 2', n=4)
    small = SGDSolver(small_param, dtype=np.float32)
    small.net.copy_trained_layers_from(big.net.to_proto())
    halves = iter([slice(0, 4), slice(4, 8)] * 10)
    small.net.before_forward(lambda layer: feed(small.net, next(halves)) if layer == 0 else None)
    big.step(4)
    small.step(4)
    for a, b in zip(small.net.learnable_params, big.net.learnable_params):
        # Different summation order only (two half-batch sums vs one), float32 rounding.
        np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-6)
    for a, b in zip(small.history, big.history):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


STATE_NET = '''
name: "states"
state { level: 2 stage: "own" }
layer { name: "data" type: "Input" top: "x" top: "y"
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }
layer { name: "train_only" type: "Power" bottom: "ip" top: "t" include { phase: TRAIN } }
layer { name: "test_only" type: "Power" bottom: "ip" top: "u" include { phase: TEST } }
layer { name: "own_stage" type: "Power" bottom: "ip" top: "o" include { stage: "own" } }
layer { name: "deep" type: "Power" bottom: "ip" top: "d" include { min_level: 3 } }
layer { name: "extra" type: "Power" bottom: "ip" top: "e" include { stage: "extra" } }
'''


def layers_of(net):
    return [name for name in net.layer_names if not name.startswith('ip_')]


def test_net_state_merges_solver_phase_net_state_and_train_test_state():
    param = parse_text(FIXED + 'test_iter: 1 test_iter: 1 test_interval: 5 '
                       'train_state { level: 3 } '
                       'test_state { stage: "extra" } test_state { phase: TRAIN level: 3 }',
                       caffe_pb2.SolverParameter())
    param.net_param.CopyFrom(parse_text(STATE_NET, caffe_pb2.NetParameter()))
    solver = SGDSolver(param)
    train, first, second = solver.net, solver.test_nets[0], solver.test_nets[1]
    assert (train.phase, first.phase, second.phase) == (caffe_pb2.TRAIN, caffe_pb2.TEST,
                                                       caffe_pb2.TRAIN)
    # train_state's level 3 overrides the net's level 2; the net's own stage survives.
    assert {'train_only', 'own_stage', 'deep'} <= set(layers_of(train))
    assert not {'test_only', 'extra'} & set(layers_of(train))
    # test_state's stage is added to the net's own stage; level stays the net's 2.
    assert {'test_only', 'own_stage', 'extra'} <= set(layers_of(first))
    assert not {'train_only', 'deep'} & set(layers_of(first))
    assert {'train_only', 'deep', 'own_stage'} <= set(layers_of(second))


def test_test_nets_share_the_train_weights_and_log_means(log_text):
    param = solver_param(FIXED + 'test_iter: 3 test_interval: 2 display: 1 max_iter: 2 '
                         'test_compute_loss: true snapshot_after_train: false')
    solver = SGDSolver(param)
    feed(solver.net)
    feed(solver.test_nets[0])
    solver.solve()
    test_ip = solver.test_nets[0].params['ip'][0]
    assert test_ip.shares_data_with(solver.net.params['ip'][0])
    text = log_text()
    batch_loss = np.float32(solver.test_nets[0].forward()['loss'])
    # The same batch three times (test_iter: 3), summed and divided in float as Caffe does.
    expected_loss = (batch_loss + batch_loss + batch_loss) / np.float32(3)
    lines = [line.split('] ', 1)[1] for line in text.splitlines() if '] ' in line]
    assert 'Iteration 2, Testing net (#0)' in lines
    assert 'Test loss: %g' % expected_loss in lines
    assert '    Test net output #0: loss = %g (* 1 = %g loss)' % (expected_loss, expected_loss) \
        in lines
    assert lines[-1] == 'Optimization Done.'
    # Solve's final forward-only display line; with average_loss 1 Caffe's float ring-buffer
    # update (s + (l - previous)) may round l by an ulp.
    [final] = [line for line in lines if line.startswith('Iteration 2, loss = ')]
    assert float(final.split(' = ')[1]) == pytest.approx(batch_loss, rel=1e-5)


def test_test_nets_in_caffes_order_with_their_test_iter_and_no_initial_test(tmp_path, log_text):
    """test_net_param first, then test_net files, then one generic (net_param) instance per
    test_iter left over; test_initialization false skips the test at iteration 0; without
    test_compute_loss there is no 'Test loss' line."""
    def named(name):
        net = net_param()
        net.name = name
        return net
    write_text(named('from_file'), str(tmp_path / 'test_net.prototxt'))
    param = solver_param(FIXED + 'test_iter: 1 test_iter: 2 test_iter: 3 test_iter: 4 '
                         'test_interval: 2 test_initialization: false max_iter: 4 '
                         'snapshot_after_train: false test_net: "%s"'
                         % (tmp_path / 'test_net.prototxt'))
    param.net_param.name = 'generic'
    param.test_net_param.add().CopyFrom(named('inline'))
    solver = SGDSolver(param)
    assert [net.name for net in solver.test_nets] == ['inline', 'from_file', 'generic', 'generic']
    forwards = [0] * 4
    for i, net in enumerate(solver.test_nets):
        feed(net)
        net.before_forward(lambda layer, i=i: forwards.__setitem__(i, forwards[i] + (layer == 0)))
    feed(solver.net)
    solver.solve()
    assert forwards == [2 * 1, 2 * 2, 2 * 3, 2 * 4]  # at iterations 2 and 4, test_iter each
    lines = [line.split('] ', 1)[1] for line in log_text().splitlines() if '] ' in line]
    assert [line for line in lines if line.startswith('Creating test net')] == [
        'Creating test net (#0) specified by test_net_param',
        'Creating test net (#1) specified by test_net file: %s' % (tmp_path / 'test_net.prototxt'),
        'Creating test net (#2) specified by net_param',
        'Creating test net (#3) specified by net_param']
    assert [line for line in lines if ', Testing net (#' in line] == [
        'Iteration %d, Testing net (#%d)' % (it, k) for it in (2, 4) for k in range(4)]
    assert not [line for line in lines if line.startswith('Test loss')]
    assert len([line for line in lines if line.startswith('    Test net output #0: loss = ')]) == 8


def test_display_lines_and_smoothed_loss(log_text):
    param = solver_param('base_lr: 0.05 lr_policy: "fixed" display: 2 average_loss: 3')
    solver = SGDSolver(param)
    feed(solver.net)
    losses = []
    solver.add_callback(lambda: None,
                        lambda: losses.append(float(solver.net.blobs['loss'].data)))
    solver.step(5)
    lines = [line.split('] ', 1)[1] for line in log_text().splitlines() if '] ' in line]
    shown = [line for line in lines if ' iter/s, ' in line]
    assert [line.split(' (')[0] for line in shown] == ['Iteration 0', 'Iteration 2',
                                                      'Iteration 4']
    # Caffe's UpdateSmoothedLoss in float: a running mean over the first average_loss losses,
    # then a ring buffer whose oldest entry is swapped for the newest. That is the mean of the
    # last three losses, rounded the way Caffe's float arithmetic rounds it.
    l = np.float32(losses)
    after_2 = ((l[0] * 1 + l[1]) / np.float32(2) * 2 + l[2]) / np.float32(3)
    after_3 = after_2 + (l[3] - l[0]) / np.float32(3)
    after_4 = after_3 + (l[4] - l[1]) / np.float32(3)
    assert after_4 == pytest.approx(np.mean(losses[2:5]), rel=1e-5)
    assert shown[1].endswith('s/2 iters), loss = %g' % after_2)
    assert shown[2].endswith('loss = %g' % after_4)
    assert '    Train net output #0: loss = %g (* 1 = %g loss)' % (losses[4], losses[4]) in lines
    assert 'Iteration 4, lr = 0.05' in lines


def test_output_lines_count_every_element_of_every_output_in_name_order(log_text):
    """'#k' runs over the elements of the outputs in blob-name order (Caffe collects them in a
    std::set): 'a_scaled' (a 4x2 Power output, no loss weight) before 'loss'."""
    net = net_param()
    net.layer.add().CopyFrom(parse_text('name: "scale" type: "Power" bottom: "ip" top: "a_scaled" '
                                        'power_param { scale: 2 }', caffe_pb2.LayerParameter()))
    param = parse_text('base_lr: 0.1 lr_policy: "fixed" display: 1', caffe_pb2.SolverParameter())
    param.net_param.CopyFrom(net)
    solver = SGDSolver(param)
    feed(solver.net)
    w, b = (blob.data.copy() for blob in solver.net.params['ip'])
    solver.step(1)
    scaled = (np.float32(2) * (X[:4].astype(np.float32) @ w.T + b)).ravel()
    lines = [line.split('] ', 1)[1] for line in log_text().splitlines() if '] ' in line]
    outputs = [line for line in lines if line.startswith('    Train net output #')]
    assert [line.split(' = ')[0] for line in outputs[:8]] == [
        '    Train net output #%d: a_scaled' % k for k in range(8)]
    np.testing.assert_allclose([float(line.split(' = ')[1]) for line in outputs[:8]], scaled,
                               rtol=1e-5, atol=1e-6)  # 6 significant digits printed
    loss = float(outputs[8].split(' = ')[1].split(' ')[0])
    assert outputs[8] == '    Train net output #8: loss = %g (* 1 = %g loss)' % (loss, loss)


def test_action_requests_snapshot_and_stop(tmp_path, log_text):
    param = solver_param(FIXED + 'max_iter: 10 snapshot_prefix: "%s"' % (tmp_path / 'a'))
    solver = SGDSolver(param)
    feed(solver.net)
    requests = iter([SolverAction.NONE, SolverAction.SNAPSHOT, SolverAction.STOP])
    solver.set_action_function(lambda: next(requests, SolverAction.NONE))
    solver.solve()
    assert solver.iter == 3
    assert sorted(os.listdir(tmp_path)) == [
        'a_iter_2.caffemodel', 'a_iter_2.cctstate.json', 'a_iter_2.solverstate',
        'a_iter_3.caffemodel', 'a_iter_3.cctstate.json', 'a_iter_3.solverstate']
    assert 'Optimization stopped early.' in log_text()


def test_weights_entries_fine_tune_train_and_test_nets(tmp_path):
    source = SGDSolver(solver_param(FIXED + 'random_seed: 1'))
    source.net.save(str(tmp_path / 'w.caffemodel'))
    param = solver_param(FIXED + 'random_seed: 2 test_iter: 1 test_interval: 1 weights: "%s"'
                         % (tmp_path / 'w.caffemodel'))
    solver = SGDSolver(param)
    for net in (solver.net, solver.test_nets[0]):
        np.testing.assert_array_equal(net.params['ip'][0].data, source.net.params['ip'][0].data)


def test_random_seed_makes_runs_repeatable():
    runs = []
    for _ in range(2):
        solver = SGDSolver(solver_param(FIXED + 'random_seed: 42'))
        feed(solver.net)
        solver.step(3)
        runs.append(solver.net.params['ip'][0].data.copy())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_pycaffe_surface(tmp_path):
    path = tmp_path / 'solver.prototxt'
    net_path = tmp_path / 'net.prototxt'
    write_text(net_param(), str(net_path))
    path.write_text(FIXED + 'type: "Nesterov" max_iter: 7 net: "%s"' % net_path)
    solver = get_solver(str(path))
    assert type(solver).__name__ == 'NesterovSolver' and isinstance(solver, SGDSolver)
    assert solver.max_iter == 7 and solver.param.max_iter == 7
    assert solver.param.snapshot_prefix == str(tmp_path / 'solver')
    solver.param.base_lr = 0.5
    assert solver.lr == 0.5
    other = solver.test_nets  # no test_iter: no test nets
    assert other == []
    import cct
    net = cct.Net(str(net_path), cct.TEST)
    solver.share_weights(net)
    assert net.params['ip'][0].shares_data_with(solver.net.params['ip'][0])


def test_non_finite_loss_stops_before_touching_the_last_snapshot(tmp_path):
    param = solver_param('base_lr: 50 lr_policy: "fixed" momentum: 0.9 snapshot: 1 '
                         'max_iter: 100 snapshot_prefix: "%s"' % (tmp_path / 'nan'))
    solver = SGDSolver(param, dtype=np.float32)
    feed(solver.net)
    with np.errstate(over='ignore', invalid='ignore'), pytest.raises(SolverError) as error:
        solver.solve()
    failed = solver.iter
    assert 0 < failed < 100
    # The weights are still finite; their square overflows in the loss layer first.
    assert str(error.value).startswith('Iteration %d: the loss is inf, not finite; training '
                                       'stopped' % failed)
    assert "not finite: 'loss' (type EuclideanLoss), top 'loss'." in str(error.value)
    files = sorted(os.listdir(tmp_path), key=lambda name: (int(name.split('_')[2].split('.')[0]),
                                                           name))
    assert files[-3:] == ['nan_iter_%d.%s' % (failed, ext)
                          for ext in ('caffemodel', 'cctstate.json', 'solverstate')]
    last = SGDSolver(solver_param('base_lr: 1 lr_policy: "fixed"'), dtype=np.float32)
    last.restore(str(tmp_path / ('nan_iter_%d.solverstate' % failed)))
    np.testing.assert_array_equal(last.net.params['ip'][0].data, solver.net.params['ip'][0].data)
    assert np.isfinite(last.net.params['ip'][0].data).all()


def test_an_update_that_breaks_the_weights_writes_no_snapshot(tmp_path):
    """A finite loss with a non-finite gradient: the update of iteration 2 makes a weight inf, and
    the snapshot due at iteration 3 is refused (the loss would only show it one pass later)."""
    param = solver_param(FIXED + 'snapshot: 1 max_iter: 10 snapshot_prefix: "%s"'
                         % (tmp_path / 'w'))
    solver = SGDSolver(param, dtype=np.float32)
    feed(solver.net)

    def corrupt():
        if solver.iter == 2:
            solver.net.params['ip'][0].diff[1, 2] = np.inf
    solver.add_callback(lambda: None, corrupt)
    with np.errstate(invalid='ignore'), pytest.raises(SolverError) as error:
        solver.solve()
    assert str(error.value) == (
        "Iteration 3: the weights are not finite ('ip' param 0) after the update of iteration 2; "
        'training stopped without writing this snapshot, so the snapshots written before are '
        'untouched')
    assert sorted(os.listdir(tmp_path)) == ['w_iter_%d.%s' % (i, ext) for i in (1, 2)
                                            for ext in ('caffemodel', 'cctstate.json',
                                                        'solverstate')]


def test_non_finite_message_names_the_first_bad_layer_and_its_params():
    solver = SGDSolver(solver_param(FIXED), dtype=np.float32)
    feed(solver.net)

    def corrupt():
        if solver.iter == 2:
            solver.net.params['ip'][0].data[0, 1] = np.inf
    solver.add_callback(lambda: None, corrupt)
    with np.errstate(invalid='ignore', over='ignore'), pytest.raises(SolverError) as error:
        solver.step(5)
    assert str(error.value).startswith('Iteration 3: the loss is ')
    assert str(error.value).endswith("The first layer whose output is not finite: 'ip' (type "
                                     "InnerProduct), top 'ip'; its param blob(s) 0 are not finite.")
    solver.net.params['ip'][0].data[0, 1] = 0
    solver.net.blobs['x'].data[1, 1] = np.nan
    with np.errstate(invalid='ignore'), pytest.raises(SolverError, match="not finite: 'data' "
                                                      r"\(type Input\), top 'x'\."):
        solver.step(1)


@pytest.mark.parametrize('text, message', [
    ('net: "/nonexistent/train_val.prototxt"',
     r'net file not found: /nonexistent/train_val.prototxt'),
    ('', 'must specify a train net using one of these fields: net, net_param, train_net'),
    ('train_net: "a" net: "b"', 'must specify only one train net'),
    ('type: "Momentum" net: "x"', 'Unknown solver type: Momentum .known types: SGD, Nesterov, '
     'AdaGrad, RMSProp, AdaDelta, Adam'),
    ('train_net: "%(net)s" test_net: "%(net)s"', 'test_iter must be specified for each test'),
    ('net: "%(net)s" test_iter: 2', 'test_interval must be > 0'),
    ('net: "%(net)s" average_loss: 0', 'average_loss should be >= 1'),
    ('net: "%(net)s" snapshot: 5 solver_type: ADAM type: "Adam"', 'cannot be both specified'),
])
def test_bad_solver_files_fail_clearly(tmp_path, text, message):
    write_text(net_param(), str(tmp_path / 'net.prototxt'))
    path = tmp_path / 'solver.prototxt'
    path.write_text(FIXED + text % {'net': tmp_path / 'net.prototxt'})
    with pytest.raises(CctError, match=message):
        get_solver(str(path))


def test_debug_info_logs_mean_absolute_values_on_display_iterations(log_text):
    solver = SGDSolver(solver_param(FIXED + 'display: 2 debug_info: true'))
    feed(solver.net)
    w = solver.net.params['ip'][0].data.copy()
    solver.step(1)
    lines = [line.split('] ', 1)[1] for line in log_text().splitlines() if '] ' in line]
    assert '    [Forward] Layer ip, param blob 0 data: %g' % (
        np.abs(w).sum(dtype=np.float64) / w.size) in lines
    assert '    [Forward] Layer data, top blob x data: %g' % np.abs(X[:4]).mean() in lines
    assert any(line.startswith('    [Backward] Layer ip, param blob 0 diff: ') for line in lines)
    assert not any('[Backward] Layer data' in line for line in lines)
    solver.step(1)  # iteration 1 is not a display iteration
    assert log_text().count('[Forward] Layer ip, param blob 0') == 1


def test_get_solver_upgrades_a_deprecated_solver_type():
    param = solver_param('base_lr: 0.1 lr_policy: "fixed" solver_type: ADAGRAD')
    solver = get_solver(param)
    assert type(solver).__name__ == 'AdaGradSolver' and solver.param.type == 'AdaGrad'
