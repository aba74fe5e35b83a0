"""Exact resume (cct.solver.resume_state): examples/digits trained 300 iterations straight and 150 +
150 resumed from the iteration-150 snapshot end with the same weights, bit for bit, because the
Data layers go on from the record after the last batch used (not from the first, as Caffe does) and
the generators of transforms and dropout go on too; a solverstate without cct's resume file (one
real Caffe wrote) resumes as Caffe does, and says so."""
import os

import numpy as np

from cct.solver import get_solver
from cct.testing import captured_log


def write_solver(root, name, max_iter, snapshot, net_edit=None):
    """A copy of the example's solver (and, with ``net_edit``, of its net) under ``name``."""
    work = root / 'examples' / 'digits'
    net = 'examples/digits/lenet_train_test.prototxt'
    if net_edit:
        net = 'examples/digits/%s_net.prototxt' % name
        (root / net).write_text(net_edit((work / 'lenet_train_test.prototxt').read_text()))
    text = (work / 'lenet_solver.prototxt').read_text()
    text = (text.replace('max_iter: 1000', 'max_iter: %d' % max_iter)
            .replace('snapshot_prefix: "examples/digits/lenet"',
                     'snapshot_prefix: "examples/digits/%s" snapshot: %d' % (name, snapshot))
            .replace('examples/digits/lenet_train_test.prototxt', net))
    path = work / ('%s_solver.prototxt' % name)
    path.write_text(text)
    return str(path)


def train(solver_file, resume=None):
    solver = get_solver(solver_file)
    solver.solve(resume)
    return [blob.data.copy() for blob in solver.net.learnable_params]


def assert_same(a, b):
    for mine, theirs in zip(a, b):
        np.testing.assert_array_equal(mine, theirs)


def test_digits_resumed_at_150_equals_300_straight(digits_example, monkeypatch):
    monkeypatch.chdir(digits_example)
    straight = train(write_solver(digits_example, 'straight', 300, 150))
    state = 'examples/digits/straight_iter_150.solverstate'
    resume_file = digits_example / 'examples/digits/straight_iter_150.cctstate.json'
    assert resume_file.is_file()
    with captured_log() as log:
        resumed = train(write_solver(digits_example, 'resumed', 300, 1000), state)
    assert any(line.startswith('Resuming the data sources and random generators from')
               for line in log)
    assert_same(resumed, straight)

    # Without cct's file (as real Caffe leaves a snapshot) the resume is Caffe's: the data start
    # again from the first record, the log says so, and the weights differ.
    resume_file.unlink()
    with captured_log() as log:
        as_caffe = train(write_solver(digits_example, 'as_caffe', 300, 1000), state)
    assert ('No cct resume state (straight_iter_150.cctstate.json) beside %s: the data layers '
            'start from their first record, as Caffe resumes' % state) in log
    assert max(np.abs(a - b).max() for a, b in zip(as_caffe, straight)) > 1e-6


def with_crop_mirror_and_dropout(text):
    """The digits net with a random 24x24 crop, mirroring and a Dropout layer: every generator
    a resume has to carry on."""
    text = text.replace('transform_param {\n    scale: 0.00390625\n  }',
                        'transform_param {\n    scale: 0.00390625 mirror: true crop_size: 24\n  }')
    return text.replace('''  bottom: "ip1"
  top: "ip1"
}''', '''  bottom: "ip1"
  top: "ip1"
}
layer {
  name: "drop1"
  type: "Dropout"
  bottom: "ip1"
  top: "ip1"
  dropout_param { dropout_ratio: 0.3 }
}''', 1)


def test_random_crops_mirrors_and_dropout_resume_exactly(digits_example, monkeypatch):
    monkeypatch.chdir(digits_example)
    edited = with_crop_mirror_and_dropout(
        (digits_example / 'examples/digits/lenet_train_test.prototxt').read_text())
    assert 'crop_size: 24' in edited and 'type: "Dropout"' in edited
    straight = train(write_solver(digits_example, 'rs', 60, 30, with_crop_mirror_and_dropout))
    state = 'examples/digits/rs_iter_30.solverstate'
    resumed = train(write_solver(digits_example, 'rr', 60, 1000, with_crop_mirror_and_dropout),
                    state)
    assert_same(resumed, straight)
    os.unlink('examples/digits/rs_iter_30.cctstate.json')
    as_caffe = train(write_solver(digits_example, 'rc', 60, 1000, with_crop_mirror_and_dropout),
                     state)
    assert max(np.abs(a - b).max() for a, b in zip(as_caffe, straight)) > 1e-6
