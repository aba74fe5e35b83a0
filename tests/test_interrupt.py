"""Ctrl-C during start-up (cct/interrupt.py): while cct's modules load and while a net is built, SIGINT
ends the command as it ends a Caffe tool, killed by the signal, with no traceback and no output."""
import signal
import subprocess
import sys

import pytest

# The console script's own code (pip's wrapper). Run with -X importtime, the child reports each
# module it has imported, so the signal can be timed to land inside cct's import.
LAUNCH = 'import sys; from cct.cli import main; sys.exit(main())'


def slow_net(path, layers=1500):
    """A net whose building takes a second or so (long enough to be interrupted in the middle)."""
    text = ('name: "slow"\nlayer { name: "data" type: "Input" top: "x0" input_param { shape { '
            'dim: 1 dim: 1 } } }\n')
    text += ''.join('layer { name: "p%d" type: "Power" bottom: "x%d" top: "x%d" }\n'
                    % (i, i, i + 1) for i in range(layers))
    path.write_text(text)
    return str(path)


def interrupt(argv, when):
    """Start the cct command line with ``argv``; send SIGINT as soon as a line of its output
    (stdout or stderr, merged) ends with ``when``. Returns (status, everything it printed)."""
    child = subprocess.Popen([sys.executable, '-X', 'importtime', '-c', LAUNCH] + argv,
                             stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    printed = []
    try:
        for line in child.stdout:
            printed.append(line)
            if line.rstrip().endswith(when):
                child.send_signal(signal.SIGINT)
                break
        printed.append(child.stdout.read())
        status = child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return status, ''.join(printed)


# cct.errors is imported early in cct's import (after its quiet handling is in place), with most
# of the import (protobuf, numpy, the kernels) still to come.
@pytest.mark.parametrize('when', [' cct.errors', 'Creating Layer p200'])
def test_ctrl_c_during_start_up_ends_quietly_as_caffe_does(tmp_path, when):
    net = slow_net(tmp_path / 'slow.prototxt')
    status, printed = interrupt(['time', '--model', net, '--iterations', '1'], when)
    assert status == -signal.SIGINT, printed
    assert when in printed
    assert 'Traceback' not in printed and 'KeyboardInterrupt' not in printed
    assert 'Creating Layer p1499' not in printed   # stopped where it was: no further output


def test_importing_cct_leaves_pythons_own_handling(tmp_path):
    """A script that imports cct keeps Python's KeyboardInterrupt (and excepthook) afterwards."""
    done = subprocess.run([sys.executable, '-c', 'import sys; hook = sys.excepthook; import cct; '
                           'assert sys.excepthook is hook; raise KeyboardInterrupt'],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGINT
    assert 'KeyboardInterrupt' in done.stderr
