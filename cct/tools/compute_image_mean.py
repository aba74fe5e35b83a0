"""Compute the mean_image of a set of images given by a leveldb/lmdb (tools/compute_image_mean.cpp).

Usage: ``cct compute_image_mean [--backend lmdb|leveldb] INPUT_DB [OUTPUT_FILE]``. Encoded datums
are decoded as stored (OpenCV, IMREAD_UNCHANGED). The mean is accumulated in float32 record by
record and divided by the count in float32, exactly as Caffe's float BlobProto does, and written as
a BlobProto with legacy dims num=1, channels, height, width. The per-channel means ("mean_value
channel [c]") are logged too, for a ``mean_value`` transform.
"""
import numpy as np

from cct.data.datum import datum_to_image, parse_datum
from cct.data.db import Reader, backend_name
from cct.data.progress import progress
from cct.errors import DataError
from cct.io.protofiles import write_binary
from cct.log import logger
from cct.proto import caffe_pb2


def compute_mean(db_path, backend='lmdb'):
    """The float32 C x H x W mean image of every record in the database."""
    reader = Reader(db_path, backend)
    first = reader.first()
    if first is None:
        raise DataError('the database %s is empty' % db_path)
    first_datum = parse_datum(first[1], "record '%s' of %s" % (first[0].decode(errors='replace'),
                                                             db_path))
    if first_datum.encoded:
        logger.info('Decoding Datum')
    shape = None
    total = None
    count = 0
    logger.info('Starting iteration')
    for key, value in progress(reader.items(), len(reader), 'compute_image_mean'):
        where = "record '%s' of %s" % (key.decode('utf-8', 'replace'), db_path)
        image = datum_to_image(parse_datum(value, where), where)
        if total is None:
            shape = image.shape
            total = np.zeros(shape, np.float32)
        elif image.shape != shape:
            raise DataError('%s: Incorrect data field size %d (the first record has %d x %d x %d)'
                            % ((where, image.size) + shape))
        # Caffe adds into a float BlobProto: float32 sums, record after record.
        total += image.astype(np.float32)
        count += 1
        if count % 10000 == 0:
            logger.info('Processed %d files.', count)
    if count % 10000 != 0:
        logger.info('Processed %d files.', count)
    reader.close()
    return total / np.float32(count)


def mean_blobproto(mean):
    """A BlobProto with Caffe's legacy dims (1, C, H, W) and float data."""
    proto = caffe_pb2.BlobProto(num=1, channels=mean.shape[0], height=mean.shape[1],
                                width=mean.shape[2])
    proto.data.extend(mean.ravel().tolist())
    return proto


def log_channel_means(mean):
    channels = mean.shape[0]
    logger.info('Number of channels: %d', channels)
    for channel in range(channels):
        # Caffe sums a channel in float, one value after the other, then divides by H * W.
        running = np.cumsum(mean[channel].ravel(), dtype=np.float32)[-1]
        logger.info('mean_value channel [%d]: %.6g', channel,
                    running / np.float32(mean[channel].size))


def add_arguments(parser):
    parser.add_argument('input_db', metavar='INPUT_DB')
    parser.add_argument('output_file', metavar='OUTPUT_FILE', nargs='?', default='')
    parser.add_flag('backend', default='lmdb',
                    help='The backend {leveldb, lmdb} containing the images')


def run(args):
    mean = compute_mean(args.input_db, backend_name(args.backend))
    if args.output_file:
        logger.info('Write to %s', args.output_file)
        write_binary(mean_blobproto(mean), args.output_file)
    log_channel_means(mean)
