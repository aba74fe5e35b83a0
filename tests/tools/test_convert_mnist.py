"""``cct convert_mnist``: the LMDB it writes from the real MNIST test files is record for record,
byte for byte the one real Caffe's convert_mnist_data wrote; bad idx files fail with one line."""
import os

import lmdb

from cct import cli


def lmdb_records(path):
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        records = list(txn.cursor())
    env.close()
    return records


def test_matches_caffes_lmdb_byte_for_byte(shared, tmp_path):
    folder = os.path.join(shared, 'data', 'mnist')
    status = cli.main(['convert_mnist', os.path.join(folder, 't10k-images-idx3-ubyte.gz'),
                       os.path.join(folder, 't10k-labels-idx1-ubyte.gz'),
                       str(tmp_path / 'mnist_test_lmdb'), '--backend=lmdb'])
    assert status == 0
    ours = lmdb_records(tmp_path / 'mnist_test_lmdb')
    assert len(ours) == 10000
    assert ours == lmdb_records(os.path.join(shared, 'data', 'mnist_test_lmdb_by_caffe'))


def test_bad_inputs_fail_with_one_line(shared, tmp_path, capsys):
    folder = os.path.join(shared, 'data', 'mnist')
    images = os.path.join(folder, 't10k-images-idx3-ubyte.gz')
    labels = os.path.join(folder, 't10k-labels-idx1-ubyte.gz')
    assert cli.main(['convert_mnist', labels, images, str(tmp_path / 'a')]) == 1
    assert 'Incorrect image file magic.' in capsys.readouterr().err
    assert cli.main(['convert_mnist', images, str(tmp_path / 'nope'), str(tmp_path / 'b')]) == 1
    assert 'Unable to open file %s' % (tmp_path / 'nope') in capsys.readouterr().err
    assert cli.main(['convert_mnist', images, labels, str(tmp_path / 'c')]) == 0
    assert cli.main(['convert_mnist', images, labels, str(tmp_path / 'c')]) == 1
    assert 'it already exists' in capsys.readouterr().err
    assert not os.path.exists(tmp_path / 'a') and not os.path.exists(tmp_path / 'b')
