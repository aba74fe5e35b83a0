"""``cct convert_cifar``: CIFAR-10 binary batches (made here, in CIFAR's layout) become the train
and test databases Caffe's convert_cifar_data writes: 5-digit keys, RGB planes as stored, signed
labels."""
import numpy as np
import pytest

from cct import cli
from cct.data.db import Reader
from cct.proto import caffe_pb2
from cct.tools import convert_cifar

RECORDS = 40  # per batch file; CIFAR-10's are 10000, shrunk to keep the test fast


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    monkeypatch.setattr(convert_cifar, 'BATCH_SIZE', RECORDS)


def write_batch(path, seed):
    gen = np.random.default_rng(seed)
    labels = gen.integers(0, 10, RECORDS, dtype=np.uint8)
    labels[0] = 200  # a byte above 127 reads as a negative char, as in Caffe
    pixels = gen.integers(0, 256, (RECORDS, 3072), dtype=np.uint8)
    path.write_bytes(np.concatenate([labels[:, None], pixels], axis=1).tobytes())
    return labels, pixels


def test_train_and_test_databases(tmp_path):
    batches = [write_batch(tmp_path / ('data_batch_%d.bin' % i), i) for i in range(1, 6)]
    test_labels, test_pixels = write_batch(tmp_path / 'test_batch.bin', 9)
    assert cli.main(['convert_cifar', str(tmp_path), str(tmp_path), 'leveldb']) == 0
    train = Reader(tmp_path / 'cifar10_train_leveldb', 'leveldb')
    assert len(train) == 5 * RECORDS
    stored = dict(train.items())
    for index in (0, 1, 2 * RECORDS + 7, 5 * RECORDS - 1):
        datum = caffe_pb2.Datum.FromString(stored[b'%05d' % index])
        labels, pixels = batches[index // RECORDS]
        assert (datum.channels, datum.height, datum.width) == (3, 32, 32)
        assert datum.label == labels[index % RECORDS].astype(np.int8)
        assert datum.data == pixels[index % RECORDS].tobytes()
    assert caffe_pb2.Datum.FromString(stored[b'00000']).label == 200 - 256
    test = Reader(tmp_path / 'cifar10_test_leveldb', 'leveldb')
    key, value = test.first()
    assert key == b'00000'
    assert caffe_pb2.Datum.FromString(value).data == test_pixels[0].tobytes()
    assert len(test) == RECORDS


def test_missing_batch(tmp_path, capsys):
    assert cli.main(['convert_cifar', str(tmp_path), str(tmp_path)]) == 1
    assert 'Unable to open train file #1' in capsys.readouterr().err
