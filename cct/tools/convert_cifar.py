"""Convert the CIFAR-10 binary batches to LMDB/LevelDB databases (Caffe's convert_cifar_data).

Usage: ``cct convert_cifar input_folder output_folder [db_type]`` (db_type lmdb, the default, or
leveldb). The input folder holds ``data_batch_1.bin`` ... ``data_batch_5.bin`` and
``test_batch.bin`` (CIFAR-10's binary version, gunzipped and untarred); the outputs are
``output_folder/cifar10_train_<db_type>`` (50000 records) and ``cifar10_test_<db_type>`` (10000),
with 3 x 32 x 32 raw Datums under 5-digit keys. CIFAR's planes are R, G, B and are stored as they
are, so unlike convert_imageset's these records are RGB, exactly as Caffe's.
"""
import os

import numpy as np

from cct.data.datum import raw_datum_bytes
from cct.data.db import Writer, backend_name
from cct.data.progress import progress
from cct.errors import DataError
from cct.log import logger

CIFAR_SIZE = 32
IMAGE_BYTES = 3 * CIFAR_SIZE * CIFAR_SIZE
BATCH_SIZE = 10000
TRAIN_BATCHES = 5


def read_batch(path, what):
    """(labels N int8, images N x 3 x 32 x 32 uint8) of one CIFAR-10 binary batch file."""
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError:
        raise DataError('Unable to open %s: %s' % (what, path)) from None
    records = np.frombuffer(raw, np.uint8)
    if records.size != BATCH_SIZE * (IMAGE_BYTES + 1):
        raise DataError('%s: %d bytes; a CIFAR-10 batch has %d records of %d bytes'
                        % (path, records.size, BATCH_SIZE, IMAGE_BYTES + 1))
    records = records.reshape(BATCH_SIZE, IMAGE_BYTES + 1)
    # Caffe reads the label byte as a (signed) char.
    return records[:, 0].view(np.int8), records[:, 1:].reshape(-1, 3, CIFAR_SIZE, CIFAR_SIZE)


def _write(db, labels, pixels, first_index):
    for item in progress(range(len(labels)), len(labels), 'convert_cifar'):
        db.put('%05d' % (first_index + item), raw_datum_bytes(pixels[item], labels[item]))
    db.commit()


def convert_dataset(input_folder, output_folder, db_type='lmdb'):
    """Write the train and test databases; returns their paths."""
    db_type = backend_name(db_type)
    train_path = os.path.join(output_folder, 'cifar10_train_' + db_type)
    test_path = os.path.join(output_folder, 'cifar10_test_' + db_type)
    batches = []
    for file_id in range(TRAIN_BATCHES):
        name = os.path.join(input_folder, 'data_batch_%d.bin' % (file_id + 1))
        batches.append(read_batch(name, 'train file #%d' % (file_id + 1)))
    test_batch = read_batch(os.path.join(input_folder, 'test_batch.bin'), 'test file')
    with Writer(train_path, db_type) as db:
        logger.info('Writing Training data')
        for file_id, (labels, pixels) in enumerate(batches):
            logger.info('Training Batch %d', file_id + 1)
            _write(db, labels, pixels, file_id * BATCH_SIZE)
    logger.info('Writing Testing data')
    with Writer(test_path, db_type) as db:
        _write(db, test_batch[0], test_batch[1], 0)
    return train_path, test_path


def add_arguments(parser):
    parser.add_argument('input_folder')
    parser.add_argument('output_folder')
    parser.add_argument('db_type', nargs='?', default='lmdb', help='lmdb (default) or leveldb')


def run(args):
    convert_dataset(args.input_folder, args.output_folder, args.db_type)
