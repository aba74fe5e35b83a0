"""``cct parse_log`` (Caffe's parse_log.py CSVs, cct/tools/parse_log.py) and ``cct plot`` (training
curves, cct/tools/plot.py) on a Caffe LeNet training log."""
import os
import sys

import numpy as np
import pytest
from PIL import Image

from cct.cli import main as cct_main
from cct.tools.parse_log import parse_log

CAFFE_LOG = """\
I0210 13:39:20.100000 25210 caffe.cpp:217] Using GPUs 0
I0210 13:39:21.381027 25210 solver.cpp:280] Solving LeNet
I0210 13:39:21.381040 25210 solver.cpp:281] Learning Rate Policy: inv
I0210 13:39:21.382000 25210 solver.cpp:338] Iteration 0, Testing net (#0)
I0210 13:39:22.100000 25210 solver.cpp:406]     Test net output #0: accuracy = 0.0894
I0210 13:39:22.100010 25210 solver.cpp:406]     Test net output #1: loss = 2.33834 (* 1 = 2.33834 loss)
I0210 13:39:22.110000 25210 solver.cpp:229] Iteration 0, loss = 2.30982
I0210 13:39:22.110010 25210 solver.cpp:245]     Train net output #0: loss = 2.30982 (* 1 = 2.30982 loss)
I0210 13:39:22.110020 25210 sgd_solver.cpp:106] Iteration 0, lr = 0.01
I0210 13:39:23.500000 25210 solver.cpp:229] Iteration 100, loss = 0.242524
I0210 13:39:23.500010 25210 solver.cpp:245]     Train net output #0: loss = 0.242524 (* 1 = 0.242524 loss)
I0210 13:39:23.500020 25210 sgd_solver.cpp:106] Iteration 100, lr = 0.00992565
I0210 13:39:24.900000 25210 solver.cpp:338] Iteration 200, Testing net (#0)
I0210 13:39:25.600000 25210 solver.cpp:406]     Test net output #0: accuracy = 0.9625
I0210 13:39:25.600010 25210 solver.cpp:406]     Test net output #1: loss = 0.121514 (* 1 = 0.121514 loss)
I0210 13:39:25.610000 25210 solver.cpp:229] Iteration 200, loss = 0.152361
I0210 13:39:25.610010 25210 solver.cpp:245]     Train net output #0: loss = 0.152361 (* 1 = 0.152361 loss)
I0210 13:39:25.610020 25210 sgd_solver.cpp:106] Iteration 200, lr = 0.00985258
I0210 13:39:27.000000 25210 solver.cpp:229] Iteration 300, loss = 0.0971
I0210 13:39:27.000010 25210 solver.cpp:245]     Train net output #0: loss = 0.0971 (* 1 = 0.0971 loss)
I0210 13:39:27.000020 25210 sgd_solver.cpp:106] Iteration 300, lr = 0.00978075
I0210 13:39:28.400000 25210 solver.cpp:338] Iteration 400, Testing net (#0)
I0210 13:39:29.100000 25210 solver.cpp:406]     Test net output #0: accuracy = 0.9748
I0210 13:39:29.100010 25210 solver.cpp:406]     Test net output #1: loss = 0.0801 (* 1 = 0.0801 loss)
I0210 13:39:29.110000 25210 solver.cpp:229] Iteration 400, loss = 0.0858
I0210 13:39:29.110010 25210 solver.cpp:245]     Train net output #0: loss = 0.0858 (* 1 = 0.0858 loss)
I0210 13:39:29.110020 25210 sgd_solver.cpp:106] Iteration 400, lr = 0.00971013
"""

# What Caffe's tools/extra/parse_log.py writes for CAFFE_LOG (excel dialect: CRLF line ends). A
# row's LearningRate is the last 'lr = ' printed before its outputs; the first row's is copied
# from the second.
EXPECTED_TRAIN = (
    'NumIters,Seconds,LearningRate,loss\r\n'
    '0.0,0.728983,0.01,2.30982\r\n'
    '100.0,2.118983,0.01,0.242524\r\n'
    '200.0,4.228983,0.00992565,0.152361\r\n'
    '300.0,5.618983,0.00985258,0.0971\r\n'
    '400.0,7.728983,0.00978075,0.0858\r\n')
EXPECTED_TEST = (
    'NumIters,Seconds,LearningRate,accuracy,loss\r\n'
    '0.0,0.718973,0.00992565,0.0894,2.33834\r\n'
    '200.0,4.218973,0.00992565,0.9625,0.121514\r\n'
    '400.0,7.718973,0.00978075,0.9748,0.0801\r\n')


@pytest.fixture
def caffe_log(tmp_path):
    path = tmp_path / 'lenet.log'
    path.write_text(CAFFE_LOG)
    return str(path)


def test_parse_log_writes_caffes_two_csv_files(caffe_log, tmp_path):
    out = tmp_path / 'csv'
    out.mkdir()
    assert cct_main(['parse_log', caffe_log, str(out)]) == 0
    assert (out / 'lenet.log.train').read_bytes().decode() == EXPECTED_TRAIN
    assert (out / 'lenet.log.test').read_bytes().decode() == EXPECTED_TEST
    assert cct_main(['parse_log', caffe_log, str(out), '--delimiter', ';']) == 0
    assert (out / 'lenet.log.test').read_text().startswith('NumIters;Seconds;LearningRate;')


def test_parse_log_year_rollover_and_single_rows(tmp_path):
    path = tmp_path / 'newyear.log'
    path.write_text(
        'I1231 23:59:59.000000 1 solver.cpp:280] Solving LeNet\n'
        'I1231 23:59:59.500000 1 solver.cpp:245] Iteration 0, loss = 1\n'
        'I1231 23:59:59.500000 1 solver.cpp:245]     Train net output #0: loss = 1\n'
        'I0101 00:00:01.000000 1 solver.cpp:245] Iteration 10, loss = 0.5\n'
        'I0101 00:00:01.000000 1 solver.cpp:245]     Train net output #0: loss = 0.5\n'
        'a line without a glog prefix\n'
        'I0101 00:00:02.000000 1 solver.cpp:406]     Test net output #0: accuracy = 0.5\n')
    train, test = parse_log(str(path))
    assert [(row['NumIters'], row['Seconds'], row['loss']) for row in train] == \
        [(0.0, 0.5, 1.0), (10.0, 2.0, 0.5)]
    assert test == []  # Caffe writes a row only once the next one starts or it is complete


def test_parse_log_needs_a_training_log(tmp_path, capsys):
    path = tmp_path / 'not_a_log.txt'
    path.write_text('hello\n')
    assert cct_main(['parse_log', str(path), str(tmp_path)]) == 1
    assert 'no glog lines found' in capsys.readouterr().err


def test_parse_log_without_solving_line_starts_at_the_first_line(tmp_path):
    """A solver stepped from Python never logs 'Solving' (Caffe's script crashes on such logs)."""
    path = tmp_path / 'stepped.log'
    path.write_text(CAFFE_LOG.replace('Solving LeNet', 'Creating training net'))
    train, test = parse_log(str(path))
    # Time 0 is the first line (13:39:20.1); row 0's outputs were printed at 13:39:22.11001.
    assert [row['Seconds'] for row in train][:2] == [2.01001, 3.40001]
    assert [row['accuracy'] for row in test] == [0.0894, 0.9625, 0.9748]


def assert_curves_png(path, size):
    image = Image.open(path)
    assert image.format == 'PNG' and image.size == size
    rgb = np.asarray(image.convert('RGB')).reshape(-1, 3).astype(int)
    assert (rgb.min(axis=1) < 200).mean() > 0.01  # axes, text and curves, not a blank page
    # matplotlib's default blue (train loss), and the red, green and purple of the test loss,
    # test accuracy and learning-rate curves.
    for colour in ('#1f77b4', '#d62728', '#2ca02c', '#9467bd'):
        value = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
        assert (rgb == value).all(axis=1).sum() > 50, colour


def test_cct_plot_default_output(caffe_log, capsys):
    assert cct_main(['plot', caffe_log]) == 0
    assert 'Plotted 5 train and 3 test rows' in capsys.readouterr().out
    assert_curves_png(caffe_log + '.png', (800, 900))


def test_cct_plot_out_and_size(caffe_log, tmp_path):
    out = str(tmp_path / 'curves.png')
    assert cct_main(['plot', caffe_log, '--out', out, '--width', '6', '--height', '5',
                     '--dpi', '80']) == 0
    assert_curves_png(out, (480, 400))


def test_cct_plot_output_positional_or_flag(caffe_log, tmp_path, capsys):
    """``cct plot LOG OUT.png`` as ``cct draw NET OUT.png`` takes it; ``--out`` still works, and
    the two may be given together only when they agree."""
    out = str(tmp_path / 'positional.png')
    assert cct_main(['plot', caffe_log, out]) == 0
    assert_curves_png(out, (800, 900))
    assert cct_main(['plot', caffe_log, out, '--out', out, '--dpi', '50']) == 0
    assert Image.open(out).size == (400, 450)
    capsys.readouterr()
    other = str(tmp_path / 'other.png')
    assert cct_main(['plot', caffe_log, out, '--out', other]) == 1
    err = capsys.readouterr().err
    assert err == 'cct plot: error: two output files given: %s and --out %s (give one)\n' % (
        out, other)
    assert not os.path.exists(other)


def test_cct_plot_without_matplotlib_is_one_line(caffe_log, tmp_path, capsys, monkeypatch,
                                                 extras):
    """The README's main install (the data extra) has no matplotlib: say what to install."""
    monkeypatch.setitem(sys.modules, 'matplotlib.figure', None)   # makes the import fail
    assert cct_main(['plot', caffe_log, str(tmp_path / 'x.png')]) == 1
    err = capsys.readouterr().err
    assert err == ('cct plot: error: cct plot needs matplotlib, which is not installed: pip '
                   'install "matplotlib>=3.5" (or pip install -e ".[plot]" in cct\'s checkout)\n')
    assert extras['plot'] == ['matplotlib>=3.5']   # the message names the extra's requirement


SOLVED_NET = """name: 'tiny'
layer { name: 'data' type: 'Input' top: 'data' top: 'label'
        input_param { shape { dim: 16 dim: 4 } shape { dim: 16 } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
        inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 0.01 } } }
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss' }
layer { name: 'accuracy' type: 'Accuracy' bottom: 'ip' bottom: 'label' top: 'accuracy'
        include { phase: TEST } }
"""


def test_parse_log_and_plot_a_cct_training_log(tmp_path, monkeypatch, restore_logging):
    """A log written by cct's own solver (through pycaffe's init_log) parses and plots."""
    import cct as caffe
    net_path = tmp_path / 'tiny.prototxt'
    net_path.write_text(SOLVED_NET)
    solver_path = tmp_path / 'solver.prototxt'
    solver_path.write_text('net: "%s"\ntest_iter: 1\ntest_interval: 10\nbase_lr: 0.5\n'
                           'lr_policy: "step"\ngamma: 0.5\nstepsize: 20\ndisplay: 5\n'
                           'max_iter: 40\nsnapshot_prefix: "%s"\nrandom_seed: 3\n'
                           % (net_path, tmp_path / 'tiny'))
    monkeypatch.setenv('GLOG_log_dir', str(tmp_path))
    log_path = caffe.init_log(0, False)
    solver = caffe.get_solver(str(solver_path))
    rng = np.random.default_rng(0)
    data = rng.standard_normal((16, 4)).astype(np.float32)
    labels = data[:, :3].argmax(axis=1).astype(np.float32)
    for net in [solver.net] + list(solver.test_nets):
        net.blobs['data'].data[...] = data
        net.blobs['label'].data[...] = labels
    solver.solve()
    caffe.init_log(2, True)  # closes the log file
    train, test = parse_log(log_path)
    assert [row['NumIters'] for row in train] == [0, 5, 10, 15, 20, 25, 30, 35]
    assert [row['NumIters'] for row in test] == [0, 10, 20, 30, 40]
    assert train[-1]['loss'] < train[0]['loss']
    assert test[-1]['accuracy'] > test[0]['accuracy']
    # step policy: 0.5 until iteration 20, then 0.25 (rows lag the 'lr =' lines by one display).
    assert {row['LearningRate'] for row in train} == {0.5, 0.25}
    out = str(tmp_path / 'curves.png')
    assert cct_main(['plot', log_path, '--out', out]) == 0
    assert_curves_png(out, (800, 900))
