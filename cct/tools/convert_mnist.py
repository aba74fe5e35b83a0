"""Convert the MNIST idx files to an LMDB/LevelDB of Datum records (Caffe's convert_mnist_data).

Usage: ``cct convert_mnist [--backend lmdb|leveldb] input_image_file input_label_file output_db``.
Each record is a 1 x rows x cols raw uint8 Datum with its label, under the key ``%08d`` of its
index, committed every 1000 records, byte for byte as Caffe writes them. The idx files may also be
given gzipped as they are downloaded (``t10k-images-idx3-ubyte.gz``); Caffe needs them gunzipped.
"""
import gzip

import numpy as np

from cct.data.datum import raw_datum_bytes
from cct.data.db import Writer, backend_name
from cct.data.progress import progress
from cct.errors import DataError
from cct.log import logger

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049


def read_idx(path, magic, what):
    """The big-endian header ints and the uint8 payload of an idx file (plain or gzipped)."""
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError('Unable to open file %s' % path) from None
    except OSError as e:
        raise DataError('Unable to open file %s: %s' % (path, e.strerror)) from None
    if raw[:2] == b'\x1f\x8b':
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError('%s: corrupt gzip file: %s' % (path, e)) from None
    header_ints = 4 if magic == IMAGE_MAGIC else 2
    if len(raw) < 4 * header_ints:
        raise DataError('%s: too short for an MNIST %s file' % (path, what))
    header = np.frombuffer(raw, '>u4', header_ints)
    if header[0] != magic:
        raise DataError('Incorrect %s file magic. (%s: %d, expected %d)'
                        % (what, path, header[0], magic))
    return [int(v) for v in header[1:]], np.frombuffer(raw, np.uint8, offset=4 * header_ints)


def read_mnist(image_path, label_path):
    """(images N x rows x cols uint8, labels N uint8) of an MNIST image/label file pair."""
    (num_items, rows, cols), pixels = read_idx(image_path, IMAGE_MAGIC, 'image')
    (num_labels,), labels = read_idx(label_path, LABEL_MAGIC, 'label')
    if num_items != num_labels:
        raise DataError('%s holds %d images but %s holds %d labels'
                        % (image_path, num_items, label_path, num_labels))
    if pixels.size < num_items * rows * cols or labels.size < num_items:
        raise DataError('%s or %s is truncated' % (image_path, label_path))
    return pixels[:num_items * rows * cols].reshape(num_items, rows, cols), labels[:num_items]


def convert_dataset(image_path, label_path, db_path, backend='lmdb'):
    """Write the MNIST pair as Caffe's convert_mnist_data does; returns the number of records."""
    images, labels = read_mnist(image_path, label_path)
    count = 0
    with Writer(db_path, backend) as db:
        logger.info('A total of %d items.', len(images))
        logger.info('Rows: %d Cols: %d', images.shape[1], images.shape[2])
        for item_id in progress(range(len(images)), len(images), 'convert_mnist'):
            # Caffe reads the label as a (signed) char.
            db.put('%08d' % item_id, raw_datum_bytes(images[item_id][np.newaxis],
                                                     np.int8(labels[item_id])))
            count += 1
            if count % 1000 == 0:
                db.commit()
    logger.info('Processed %d files.', count)
    return count


def add_arguments(parser):
    parser.add_argument('input_image_file')
    parser.add_argument('input_label_file')
    parser.add_argument('output_db_file')
    parser.add_flag('backend', default='lmdb', help='The backend for storing the result')


def run(args):
    convert_dataset(args.input_image_file, args.input_label_file, args.output_db_file,
                    backend_name(args.backend))
