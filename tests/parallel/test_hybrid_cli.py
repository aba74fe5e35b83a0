"""``cct train|test|time --devices cpu,opencl:0`` on examples/digits (Data layers on LMDBs): training
tracks the single-device run's log, the snapshot it writes scores under ``cct test --devices`` as
under one device, a hybrid run resumed from its snapshot gives the straight run's weights bit for
bit, ``cct time`` shows each device's share and layers, and bad flags are one-line errors."""
import os
import re

import numpy as np
import pytest

from cct import cli, runtime
from cct.io import read_net_binary
from cct.testing import captured_log


def write_solver(root, name, max_iter, snapshot):
    work = root / 'examples' / 'digits'
    text = (work / 'lenet_solver.prototxt').read_text()
    text = (text.replace('max_iter: 1000', 'max_iter: %d' % max_iter)
            .replace('display: 50', 'display: 1')
            .replace('test_interval: 200', 'test_interval: %d' % max_iter)
            .replace('snapshot_prefix: "examples/digits/lenet"',
                     'snapshot_prefix: "examples/digits/%s" snapshot: %d' % (name, snapshot)))
    path = work / ('%s_solver.prototxt' % name)
    path.write_text(text)
    return str(path)


def cct(*argv):
    try:
        with captured_log() as log:
            status = cli.main(list(argv))
    finally:
        runtime.set_mode_cpu()
    return status, log


def losses(log):
    return [float(m.group(1)) for m in
            (re.search(r'^Iteration \d+ \(.*\), loss = (\S+)$', line) for line in log) if m]


def weights(path):
    return [np.array(blob.data) for layer in read_net_binary(path).layer for blob in layer.blobs]


def test_train_test_and_resume_split_across_devices(digits_example, monkeypatch, ocl):
    monkeypatch.chdir(digits_example)
    solver = write_solver(digits_example, 'one', 20, 20)
    status, single = cct('train', '--solver', solver)
    assert status == 0
    solver = write_solver(digits_example, 'split', 20, 10)
    status, split = cct('train', '--solver', solver, '--devices', 'cpu,opencl:0',
                        '--split', '0.5,0.5')
    assert status == 0
    assert 'Hybrid split (fixed): cpu 32 images, opencl:0 32 images' in split
    np.testing.assert_allclose(losses(split)[:10], losses(single)[:10], rtol=1e-4)
    np.testing.assert_allclose(losses(split), losses(single), rtol=1e-3)
    # The test net ran on the first device during training, with the trained weights.
    assert any(line.startswith('    Test net output #0: accuracy') for line in split)

    # cct test on the split batch: the whole batch's accuracy and loss, as on one device.
    model = 'examples/digits/lenet_train_test.prototxt'
    status, one_device = cct('test', '--model', model, '--weights',
                             'examples/digits/split_iter_20.caffemodel', '--iterations', '3')
    assert status == 0
    status, two_devices = cct('test', '--model', model, '--weights',
                              'examples/digits/split_iter_20.caffemodel', '--iterations', '3',
                              '--devices', 'opencl:0,cpu', '--split', '0.3,0.7')
    assert status == 0
    summary = [line for line in one_device if re.match(r'^(accuracy|loss) = ', line)]
    hybrid_summary = [line for line in two_devices if re.match(r'^(accuracy|loss) = ', line)]
    assert len(summary) == 2 and len(hybrid_summary) == 2
    for mine, theirs in zip(hybrid_summary, summary):
        assert float(mine.split()[2]) == pytest.approx(float(theirs.split()[2]), rel=1e-5)

    # Resumed from the iteration-10 snapshot, the split run ends with the straight run's weights.
    status, _ = cct('train', '--solver', solver, '--devices', 'cpu,opencl:0', '--split',
                    '0.5,0.5', '--snapshot', 'examples/digits/split_iter_10.solverstate')
    assert status == 0
    straight = weights('examples/digits/split_iter_20.caffemodel')
    os.rename('examples/digits/split_iter_20.caffemodel', 'examples/digits/straight.caffemodel')
    status, _ = cct('train', '--solver', solver, '--devices', 'cpu,opencl:0', '--split',
                    '0.5,0.5', '--snapshot', 'examples/digits/split_iter_10.solverstate')
    for mine, theirs in zip(weights('examples/digits/split_iter_20.caffemodel'), straight):
        np.testing.assert_array_equal(mine, theirs)


def test_time_shows_each_devices_share_and_layers(digits_example, monkeypatch, ocl):
    monkeypatch.chdir(digits_example)
    status, log = cct('time', '--model', 'examples/digits/lenet_train_test.prototxt',
                      '--devices', 'cpu,opencl:0', '--iterations', '2')
    assert status == 0
    split = [line for line in log if line.startswith('Split of the batch of 64: ')]
    assert len(split) == 1
    shares = [int(n) for n in re.findall(r'(?:cpu|opencl:0) (\d+) \(', split[0])]
    assert len(shares) == 2 and sum(shares) == 64
    for device in ('cpu', 'opencl:0'):
        assert any(line.startswith('Device %s: ' % device) for line in log)
        for layer in ('conv1', 'ip2', 'loss'):
            assert any(re.match(r'^ *%s\t%s\tforward: \S+ ms\.$' % (layer, device), line)
                       for line in log), (layer, device)
    assert any(line.startswith('Hybrid step gather: ') for line in log)


@pytest.mark.parametrize('flags, message', [
    (['--split', '0.5,0.5'], '--split needs --devices'),
    (['--devices', 'cpu,opencl:0', '--split', '0.5,0.6'], 'add up to 1.1, not 1'),
    (['--devices', 'cpu,opencl:0', '--split', '1'], 'gives 1 fractions for 2 devices'),
    (['--devices', 'cpu,opencl:0', '--split=-1,2'], 'must be a number >= 0'),
    (['--devices', 'cpu,nosuch:0'], 'nosuch:0'),
    (['--devices', 'cpu,opencl:0', '--gpu', '0'], 'not both'),
])
def test_bad_flags_are_one_line_errors(digits_example, monkeypatch, capsys, ocl, flags,
                                       message):
    monkeypatch.chdir(digits_example)
    status, _ = cct('time', '--model', 'examples/digits/lenet_train_test.prototxt',
                    '--iterations', '1', *flags)
    assert status != 0
    err = capsys.readouterr().err
    assert message in err
    assert 'Traceback' not in err
