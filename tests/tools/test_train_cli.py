"""``cct train``, ``cct test``, ``cct time`` and ``cct device_query``: Caffe's flag spellings and rules,
their log lines, and one-line errors for what a user can get wrong."""
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from cct import cli
from cct import io as cct_io
from cct.io import parse_text, write_text
from cct.proto import caffe_pb2
from cct.solver import SGDSolver, SolverAction
from cct.solver.signals import SignalHandler

NET = '''
name: "tiny"
layer { name: "data" type: "Input" top: "x" top: "y"
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "constant" value: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip" bottom: "y" top: "loss" }
layer { name: "staged" type: "Power" bottom: "ip" top: "p" include { stage: "s1" } }
'''
SOLVER = '''net: "%(dir)s/net.prototxt"
base_lr: %(lr)g lr_policy: "fixed" momentum: 0.9 weight_decay: 0.01 random_seed: 3
display: 1 max_iter: %(max_iter)d snapshot: 2 snapshot_prefix: "%(dir)s/%(prefix)s"
test_iter: 1 test_interval: 2
%(extra)s
'''


def write_solver(directory, max_iter=4, prefix='tiny', extra='', lr=0.1):
    directory = str(directory)
    write_text(parse_text(NET, caffe_pb2.NetParameter()), os.path.join(directory, 'net.prototxt'))
    path = os.path.join(directory, 'solver_%s.prototxt' % prefix)
    with open(path, 'w') as f:
        f.write(SOLVER % dict(dir=directory, max_iter=max_iter, prefix=prefix, extra=extra, lr=lr))
    return path


def run(capsys, *argv):
    status = cli.main(list(argv))
    err = capsys.readouterr().err
    messages = [line.split('] ', 1)[1] for line in err.splitlines() if '] ' in line]
    return status, err, messages


def weights_of(path):
    model = cct_io.read_net_binary(path)
    layer = next(layer for layer in model.layer if layer.name == 'ip')
    return np.asarray(layer.blobs[0].data)


@pytest.mark.parametrize('spelling', ['positional', '-solver', '--solver=', '-solver='])
def test_train_accepts_every_caffe_spelling(tmp_path, capsys, spelling):
    solver = write_solver(tmp_path)
    argv = {'positional': [solver], '-solver': ['-solver', solver],
            '--solver=': ['--solver=' + solver], '-solver=': ['-solver=' + solver]}[spelling]
    status, err, messages = run(capsys, 'train', *argv)
    assert status == 0, err
    assert messages[-2:] == ['Optimization Done.', 'Optimization Done.']
    assert 'Use CPU.' in messages and 'Starting Optimization' in messages
    assert os.path.exists(tmp_path / 'tiny_iter_4.solverstate')


def test_snapshot_resumes_bit_identically_and_ignores_solver_weights(tmp_path, capsys):
    straight = write_solver(tmp_path, max_iter=4, prefix='straight')
    assert run(capsys, 'train', straight)[0] == 0
    # The solver file names weights that do not exist: --snapshot clears them, as Caffe does.
    resumed = write_solver(tmp_path, max_iter=4, prefix='resumed',
                           extra='weights: "/nonexistent.caffemodel"')
    status, err, messages = run(capsys, 'train', '--solver', resumed, '--snapshot',
                                str(tmp_path / 'straight_iter_2.solverstate'))
    assert status == 0, err
    assert 'Resuming from %s' % (tmp_path / 'straight_iter_2.solverstate') in messages
    assert not [m for m in messages if m.startswith('Finetuning')]
    np.testing.assert_array_equal(weights_of(str(tmp_path / 'resumed_iter_4.caffemodel')),
                                  weights_of(str(tmp_path / 'straight_iter_4.caffemodel')))


def test_weights_flag_list_replaces_solver_weights(tmp_path, capsys):
    first = SGDSolver(caffe_pb2.SolverParameter(net_param=parse_text(NET, caffe_pb2.NetParameter()),
                                                random_seed=10))
    first.net.save(str(tmp_path / 'a.caffemodel'))
    first.net.params['ip'][0].data[...] = 7.0
    first.net.save(str(tmp_path / 'b.caffemodel'))
    solver = write_solver(tmp_path, max_iter=1, lr=0, extra='weights: "/nonexistent.caffemodel"')
    status, err, messages = run(capsys, 'train', '-solver', solver, '-weights',
                                '%s, %s' % (tmp_path / 'a.caffemodel', tmp_path / 'b.caffemodel'))
    assert status == 0, err
    assert messages.count('Finetuning from %s' % (tmp_path / 'b.caffemodel')) == 2  # train + test
    np.testing.assert_array_equal(weights_of(str(tmp_path / 'tiny_iter_1.caffemodel')), 7.0)


def test_solver_file_weights_fine_tune_without_flags(tmp_path, capsys):
    source = SGDSolver(caffe_pb2.SolverParameter(net_param=parse_text(NET, caffe_pb2.NetParameter()),
                                                 random_seed=11))
    source.net.save(str(tmp_path / 'w.caffemodel'))
    solver = write_solver(tmp_path, max_iter=1, lr=0,
                          extra='weights: "%s"' % (tmp_path / 'w.caffemodel'))
    assert run(capsys, 'train', solver)[0] == 0
    np.testing.assert_array_equal(weights_of(str(tmp_path / 'tiny_iter_1.caffemodel')),
                                  source.net.params['ip'][0].data.ravel())


def test_level_and_stage_reach_the_train_net(tmp_path, capsys):
    solver = write_solver(tmp_path, max_iter=0)
    _, _, messages = run(capsys, 'train', solver)
    assert messages.count('Creating Layer staged') == 0
    _, _, messages = run(capsys, 'train', solver, '--stage', 's0,s1', '--level', '2')
    assert messages.count('Creating Layer staged') == 1  # the train net only


@pytest.mark.parametrize('argv, message', [
    (['--weights', 'w.caffemodel', '--snapshot', 's.solverstate'],
     'Give a snapshot to resume training or weights to finetune but not both.'),
    (['--gpu', '7'], 'GPU 7 does not exist'),
    (['--gpu', 'zero'], '--gpu takes device IDs separated by commas or "all"'),
    (['--sigint_effect', 'explode'], 'Invalid signal effect "explode" was specified'),
])
def test_train_flag_errors_are_one_line(tmp_path, capsys, argv, message):
    solver = write_solver(tmp_path)
    status, err, _ = run(capsys, 'train', solver, *argv)
    assert status == 1
    assert err.strip().splitlines()[-1].startswith('cct train: error: ' + message)


@pytest.mark.parametrize('extra, message', [
    ('type: "Momentum"', 'Unknown solver type: Momentum (known types: SGD, Nesterov'),
    ('train_net: "/nonexistent/net.prototxt"', 'must specify only one train net'),
])
def test_bad_solver_files_are_one_line_errors(tmp_path, capsys, extra, message):
    solver = write_solver(tmp_path, extra=extra)
    status, err, _ = run(capsys, 'train', solver)
    assert status == 1
    assert message in err.strip().splitlines()[-1]


def test_missing_net_file_names_it(tmp_path, capsys):
    path = tmp_path / 'solver.prototxt'
    path.write_text('net: "examples/none/lenet.prototxt" base_lr: 0.01 '
                    'lr_policy: "fixed"')
    status, err, _ = run(capsys, 'train', '--solver', str(path))
    assert status == 1
    assert err.strip().splitlines()[-1].startswith(
        'cct train: error: %s: net file not found: examples/none/lenet.prototxt'
        % path)


def test_solver_mode_gpu_in_the_file_picks_its_device_id(tmp_path, capsys):
    """As Caffe's tool: the file's solver_mode: GPU with device_id picks that accelerator when
    no --gpu flag is given; one that does not exist is an error naming the devices there are."""
    solver = write_solver(tmp_path, max_iter=1, extra='solver_mode: GPU device_id: 7')
    status, err, _ = run(capsys, 'train', solver)
    assert status == 1
    assert err.strip().splitlines()[-1].startswith('cct train: error: GPU 7 does not exist')
    status, err, messages = run(capsys, 'train', solver, '--gpu', '7')
    assert status == 1 and 'GPU 7 does not exist' in err
    solver = write_solver(tmp_path, max_iter=1, extra='solver_mode: CPU device_id: 7')
    status, err, messages = run(capsys, 'train', solver)
    assert status == 0 and 'Use CPU.' in messages


def test_signals_stop_or_snapshot_training(tmp_path):
    with SignalHandler('snapshot', 'stop') as handler:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGHUP)
        assert [handler.check(), handler.check(), handler.check()] == [
            SolverAction.SNAPSHOT, SolverAction.STOP, SolverAction.NONE]
    path = write_solver(tmp_path, max_iter=100, prefix='sig')
    solver = SGDSolver(path)
    with SignalHandler('stop', 'snapshot') as handler:
        solver.set_action_function(handler.check)
        solver.add_callback(lambda: os.kill(os.getpid(), signal.SIGINT) if solver.iter == 2
                            else None, lambda: None)
        solver.solve()
    assert solver.iter == 3
    assert os.path.exists(tmp_path / 'sig_iter_3.solverstate')  # snapshot_after_train


def test_cct_test_prints_batches_and_means(tmp_path, capsys):
    solver = write_solver(tmp_path, max_iter=2)
    run(capsys, 'train', solver)
    status, err, messages = run(capsys, 'test', '-model', str(tmp_path / 'net.prototxt'),
                                '-weights', str(tmp_path / 'tiny_iter_2.caffemodel'),
                                '-iterations', '3')
    assert status == 0, err
    batches = [m for m in messages if m.startswith('Batch ')]
    assert [m.split(',')[0] for m in batches] == ['Batch 0', 'Batch 1', 'Batch 2']
    value = batches[0].split(' = ')[1]
    assert messages[-2:] == ['Loss: ' + value, 'loss = %s (* 1 = %s loss)' % (value, value)]
    status, err, _ = run(capsys, 'test', '-model', str(tmp_path / 'net.prototxt'))
    assert status == 1 and 'Need model weights to score' in err


CLASSIFIER = '''
name: "classifier"
layer { name: "data" type: "DummyData" top: "x" top: "label"
        dummy_data_param { shape { dim: 8 dim: 3 } shape { dim: 8 }
                           data_filler { type: "gaussian" std: 2 }
                           data_filler { type: "constant" value: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "x" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
        loss_weight: 2 }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy" }
'''


def test_cct_test_lines_for_two_outputs_are_caffes(tmp_path, capsys):
    """Outputs in blob-name order (accuracy, then loss), one 'Batch i, name = v' line per element
    per batch, then 'Loss: ' (the weighted loss) and each output's float mean, the loss with its
    weight, exactly as caffe.cpp's test() prints them."""
    import cct
    write_text(parse_text(CLASSIFIER, caffe_pb2.NetParameter()), str(tmp_path / 'cls.prototxt'))
    cct.Net(str(tmp_path / 'cls.prototxt'), cct.TEST).save(str(tmp_path / 'cls.caffemodel'))
    status, err, messages = run(capsys, 'test', '--model=' + str(tmp_path / 'cls.prototxt'),
                                '--weights=' + str(tmp_path / 'cls.caffemodel'),
                                '--iterations=4')
    assert status == 0, err
    start = messages.index('Running for 4 iterations.')
    batches = messages[start + 1:start + 9]
    assert [b.rsplit(' = ', 1)[0] for b in batches] == [
        'Batch %d, %s' % (i, name) for i in range(4) for name in ('accuracy', 'loss')]
    accuracy = np.float32([b.rsplit(' = ', 1)[1] for b in batches[0::2]])
    loss = np.float32([b.rsplit(' = ', 1)[1] for b in batches[1::2]])
    assert len(set(loss.tolist())) > 1  # the gaussian data is drawn again for every batch

    summary = messages[start + 9:]
    assert len(summary) == 3
    numbers = r'([-+.\deE]+|nan|inf)'
    total, = re.fullmatch('Loss: ' + numbers, summary[0]).groups()
    mean_accuracy, = re.fullmatch('accuracy = ' + numbers, summary[1]).groups()
    mean_loss, weighted = re.fullmatch(r'loss = %s \(\* 2 = %s loss\)' % (numbers, numbers),
                                       summary[2]).groups()
    # The batch lines carry 6 significant digits, so their means agree to about that.
    assert float(total) == pytest.approx(2 * loss.mean(), rel=1e-5)
    assert float(mean_accuracy) == pytest.approx(accuracy.mean(), rel=1e-5, abs=1e-6)
    assert float(mean_loss) == pytest.approx(loss.mean(), rel=1e-5)
    assert float(weighted) == pytest.approx(2 * loss.mean(), rel=1e-5)


def test_cct_time_prints_caffes_table_and_the_update(tmp_path, capsys):
    write_solver(tmp_path)
    status, err, messages = run(capsys, 'time', '--model', str(tmp_path / 'net.prototxt'),
                                '--iterations', '2', '--phase', 'TRAIN')
    assert status == 0, err
    start = messages.index('Performing Forward')
    assert messages[start + 1].startswith('Initial loss: ')
    assert messages[start + 2] == 'Performing Backward'
    assert 'Testing for 2 iterations.' in messages
    assert [m.split(' time')[0] for m in messages if m.startswith('Iteration: ')] == [
        'Iteration: 1 forward-backward', 'Iteration: 2 forward-backward']
    # caffe.cpp: setw(10) right-aligned names, forward then backward, layers in net order.
    table = messages.index('Average time per layer: ')
    assert [re.sub(r'\t(\w+): [\d.e+-]+ ms\.$', r'\t\1: X ms.', m)
            for m in messages[table + 1:table + 7]] == [
        '%10s\t%s: X ms.' % (name, kind) for name in ('data', 'ip', 'loss')
        for kind in ('forward', 'backward')]
    assert [m.split(': ')[0] for m in messages[table + 7:table + 11]] == [
        'Average Forward pass', 'Average Backward pass', 'Average Forward-Backward', 'Total Time']
    for label in ('Average Forward pass: ', 'Average Backward pass: ',
                  'Average Forward-Backward: ', 'Total Time: ', 'Average Update (SGD'):
        assert any(m.startswith(label) for m in messages), label
    assert messages[-1] == '*** Benchmark ends ***'
    status, err, _ = run(capsys, 'time', '--model', str(tmp_path / 'net.prototxt'),
                         '--phase', 'VALIDATE')
    assert status == 1 and 'phase must be "TRAIN" or "TEST"' in err


def test_device_query_lists_the_cpu_and_refuses_missing_gpus(capsys):
    status, err, messages = run(capsys, 'device_query')
    assert status == 0
    assert 'Device: CPU' in messages
    assert any(m.startswith('BLAS (cct kernels):') and 'openblas' in m.lower()
               for m in messages)
    assert any(m.startswith('BLAS (numpy):') for m in messages)
    assert any(m.startswith('BLAS threads:') for m in messages)
    assert any(m.startswith('Logical cores:') for m in messages)
    status, err, _ = run(capsys, 'device_query', '--gpu', '9')
    assert status == 1 and 'GPU 9 does not exist' in err


class _Terminal(__import__('io').StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal_and_log_lines_stay_whole(tmp_path, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr('sys.stderr', terminal)
    status = cli.main(['train', write_solver(tmp_path, max_iter=6)])
    assert status == 0
    text = terminal.getvalue()
    assert re.search(r'\| [1-6]/6 \[[^]]* iter/s\]', text)
    lines = [line.split('\r')[-1] for line in text.split('\n')]
    assert any(line.endswith('] Solving tiny') for line in lines)
    assert sum(line.endswith('] Optimization Done.') for line in lines) == 2


LONG_SOLVER = '''net: "%(dir)s/net.prototxt"
base_lr: 0.01 lr_policy: "fixed" momentum: 0.9 random_seed: 3
display: 50 max_iter: 10000000 snapshot: 0 snapshot_prefix: "%(dir)s/sig"
'''


def _train_and_signal(tmp_path, flags, first, second):
    """Run `cct train` in a child process; send it ``first`` once it is training, ``second`` once
    a display line shows it carried on past what ``first`` did. Returns (status, messages, the
    iteration when ``first`` was sent)."""
    write_solver(tmp_path)
    solver = tmp_path / 'long_solver.prototxt'
    solver.write_text(LONG_SOLVER % dict(dir=tmp_path))
    child = subprocess.Popen([sys.executable, '-m', 'cct.cli', 'train', '-solver', str(solver)] +
                             flags, stderr=subprocess.PIPE, text=True)
    messages, sent_first, sent_second = [], None, False
    try:
        for line in child.stderr:
            messages.append(line.rstrip('\n').split('] ', 1)[-1])
            shown = re.match(r'Iteration (\d+) \(', messages[-1])
            if shown and sent_first is None:
                sent_first = int(shown.group(1))
                child.send_signal(first)
            elif shown and not sent_second and int(shown.group(1)) >= sent_first + 100:
                child.send_signal(second)
                sent_second = True
        status = child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return status, messages, sent_first


def _snapshot_iterations(messages):
    return [int(m.rsplit('_iter_', 1)[1].split('.')[0]) for m in messages
            if m.startswith('Snapshotting solver state to binary proto file ')]


def test_sighup_snapshots_and_sigint_stops_by_default(tmp_path):
    status, messages, first = _train_and_signal(tmp_path, [], signal.SIGHUP, signal.SIGINT)
    assert status == 0, messages[-5:]
    hup, stop = _snapshot_iterations(messages)  # SIGHUP's, then snapshot_after_train's
    assert first < hup < stop
    assert messages[-2:] == ['Optimization stopped early.', 'Optimization Done.']
    for iteration in (hup, stop):
        state = cct_io.read_binary(str(tmp_path / ('sig_iter_%d.solverstate' % iteration)),
                                   caffe_pb2.SolverState)
        assert state.iter == iteration


def test_signal_effect_flags_none_and_stop(tmp_path):
    status, messages, first = _train_and_signal(
        tmp_path, ['-sigint_effect', 'none', '--sighup_effect=stop'], signal.SIGINT,
        signal.SIGHUP)
    assert status == 0, messages[-5:]
    shown = [int(m.split()[1]) for m in messages if re.match(r'Iteration \d+ \(', m)]
    assert shown[-1] >= first + 100  # SIGINT did not stop it
    [stop] = _snapshot_iterations(messages)  # snapshot_after_train only: SIGINT wrote nothing
    assert stop > shown[-1]
    assert messages[-2:] == ['Optimization stopped early.', 'Optimization Done.']


def test_a_non_finite_loss_is_a_one_line_error_and_saves_nothing_after_it(tmp_path, capsys):
    """lr 50 on the zero-input net makes the bias (and so the loss) diverge in a few iterations."""
    solver = write_solver(tmp_path, max_iter=1000, lr=50)
    with np.errstate(over='ignore', invalid='ignore'):
        status, err, messages = run(capsys, 'train', solver)
    assert status == 1
    last = err.strip().splitlines()[-1]
    failed = int(re.match(r'cct train: error: Iteration (\d+): the loss is (inf|nan), not '
                          r'finite; training stopped', last).group(1))
    assert last.endswith("The first layer whose output is not finite: 'loss' (type "
                         "EuclideanLoss), top 'loss'.")
    written = {int(name.split('_')[2].split('.')[0]) for name in os.listdir(tmp_path)
               if name.startswith('tiny_iter_')}
    assert max(written) == failed - failed % 2  # snapshot: 2; nothing after the failure
    assert 'Optimization Done.' not in messages


def test_log_dir_writes_glogs_log_file_that_parse_log_reads(tmp_path, capsys):
    from cct.tools import parse_log
    solver = write_solver(tmp_path, max_iter=4)
    logs = tmp_path / 'logs'
    logs.mkdir()
    status, err, _ = run(capsys, 'train', solver, '-log_dir', str(logs))
    assert status == 0, err
    link = logs / 'cct.INFO'
    assert link.is_symlink()
    assert re.fullmatch(r'cct\.[^.]+(\.[^.]+)*\.log\.INFO\.\d{8}-\d{6}\.%d' % os.getpid(),
                        os.readlink(link))
    lines = link.read_text().splitlines()
    assert lines[0].startswith('Log file created at: ')
    assert lines[1].startswith('Running on machine: ')
    assert lines[2] == 'Log line format: [IWEF]mmdd hh:mm:ss.uuuuuu threadid file:line] msg'
    assert lines[3:] == err.splitlines()  # the same log as on stderr (glog's alsologtostderr)
    train_rows, test_rows = parse_log.parse_log(str(link))
    assert [row['NumIters'] for row in train_rows] == [0, 1, 2, 3]
    assert [row['NumIters'] for row in test_rows] == [0, 2, 4]


def test_glog_environment_and_a_bad_log_dir(tmp_path, capsys, monkeypatch):
    solver = write_solver(tmp_path, max_iter=1)
    monkeypatch.setenv('GLOG_minloglevel', '1')
    status, err, messages = run(capsys, 'train', solver)
    assert status == 0 and messages == []  # INFO lines are below minloglevel 1
    monkeypatch.setenv('GLOG_minloglevel', '0')
    monkeypatch.setenv('GLOG_log_dir', str(tmp_path / 'missing'))
    status, err, _ = run(capsys, 'train', solver)
    assert status == 1
    assert err.strip().splitlines()[-1] == (
        'cct train: error: cannot write a log file in --log_dir %s: No such file or directory'
        % (tmp_path / 'missing'))
    status, err, _ = run(capsys, 'train', solver, '--logtostderr')  # no file wanted: no error
    assert status == 0, err


def test_cct_test_warns_when_no_weights_matched(tmp_path, capsys):
    """Weights of another net (no layer name in common) score random weights: cct says so in the
    log, as a warning, instead of silently printing their accuracy."""
    import cct
    write_text(parse_text(CLASSIFIER, caffe_pb2.NetParameter()), str(tmp_path / 'cls.prototxt'))
    cct.Net(str(tmp_path / 'cls.prototxt'), cct.TEST).save(str(tmp_path / 'cls.caffemodel'))
    renamed = CLASSIFIER.replace('name: "ip"', 'name: "fc"')
    assert renamed != CLASSIFIER
    write_text(parse_text(renamed, caffe_pb2.NetParameter()), str(tmp_path / 'other.prototxt'))
    status, err, messages = run(capsys, 'test', '--model=' + str(tmp_path / 'other.prototxt'),
                                '--weights=' + str(tmp_path / 'cls.caffemodel'),
                                '--iterations=1')
    assert status == 0, err
    warned = [line for line in err.splitlines() if line.startswith('W')]
    assert len(warned) == 1 and warned[0].endswith(
        "cls.caffemodel: no layer with weights matched a layer of net 'classifier' by name (the "
        'file has 1 layers with weights, e.g. ip): the net keeps its initial weights'), err
