"""The README's main job, shortened: examples/digits/create_digits.py makes the LMDBs from
scikit-learn's bundled digits with ``cct convert_imageset``, and ``cct train`` trains the example's
LeNet on them for a few iterations, testing and leaving a .caffemodel."""
import importlib.util
import os
import shutil

import numpy as np

from cct import cli
from cct.data.db import Reader
from cct.proto import caffe_pb2

EXAMPLE = os.path.join(os.path.dirname(__file__), '..', '..', 'examples', 'digits')


def load_script():
    spec = importlib.util.spec_from_file_location('create_digits',
                                                  os.path.join(EXAMPLE, 'create_digits.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_create_and_train(tmp_path, monkeypatch, capfd):
    """Run from a copy of the repository layout, as the README does from the root."""
    work = tmp_path / 'examples' / 'digits'
    work.mkdir(parents=True)
    for name in ('lenet_train_test.prototxt', 'lenet_solver.prototxt'):
        shutil.copy(os.path.join(EXAMPLE, name), work / name)
    solver = (work / 'lenet_solver.prototxt').read_text()
    (work / 'lenet_solver.prototxt').write_text(
        solver.replace('max_iter: 1000', 'max_iter: 40').replace('test_interval: 200',
                                                                 'test_interval: 40'))
    monkeypatch.chdir(tmp_path)
    assert load_script().main([]) == 0
    train = Reader('examples/digits/digits_train_lmdb', 'lmdb')
    test = Reader('examples/digits/digits_test_lmdb', 'lmdb')
    assert (len(train), len(test)) == (1497, 300)
    key, value = train.first()
    datum = caffe_pb2.Datum.FromString(value)
    assert key.startswith(b'00000000_digit_0000.png')
    assert (datum.channels, datum.height, datum.width) == (1, 28, 28)
    assert np.frombuffer(datum.data, np.uint8).max() > 200
    # Rerunning the script (the README's command, run twice) remakes the same databases.
    first_records = list(test.items())
    test.close()
    train.close()
    capfd.readouterr()
    assert load_script().main([]) == 0
    assert 'Replacing the existing examples/digits/digits_test_lmdb' in capfd.readouterr().out
    assert list(Reader('examples/digits/digits_test_lmdb', 'lmdb').items()) == first_records
    capfd.readouterr()
    assert cli.main(['train', '--solver=examples/digits/lenet_solver.prototxt']) == 0
    log = capfd.readouterr().err
    assert 'Test net output #0: accuracy = ' in log
    accuracy = float(log.rsplit('Test net output #0: accuracy = ', 1)[1].split()[0])
    assert accuracy > 0.5  # 40 iterations already learn most digits
    assert os.path.isfile('examples/digits/lenet_iter_40.caffemodel')
