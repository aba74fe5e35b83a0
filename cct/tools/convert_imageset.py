"""Convert a set of images to the leveldb/lmdb format used as input for Caffe.

Caffe's tools/convert_imageset.cpp. Usage: ``cct convert_imageset [FLAGS] ROOTFOLDER/ LISTFILE
DB_NAME``. LISTFILE lines are
``relative/path label`` (split at the last space); each image is read with OpenCV (BGR, or grey with
--gray), optionally resized, and stored as a Datum under the key ``%08d_<relative path>`` (its line
index after --shuffle), raw or, with --encoded, as the file's own bytes (re-encoded when resized,
converted or --encode_type differs from its extension). ROOTFOLDER is prefixed to each path as is,
so it needs its trailing slash, as in Caffe. An image that cannot be read is logged and skipped.
"""
import os

from cct import rng
from cct.data import images
from cct.data.datum import file_to_datum, image_to_datum
from cct.data.db import Writer, backend_name
from cct.data.progress import progress
from cct.errors import DataError
from cct.log import logger
from cct.tools.bool_flags import add_bool_flag


def add_arguments(parser):
    parser.add_argument('root_folder', metavar='ROOTFOLDER/')
    parser.add_argument('list_file', metavar='LISTFILE')
    parser.add_argument('db_name', metavar='DB_NAME')
    add_bool_flag(parser, 'gray', 'When this option is on, treat images as grayscale ones')
    add_bool_flag(parser, 'shuffle', 'Randomly shuffle the order of images and their labels')
    parser.add_flag('backend', default='lmdb', help='The backend {lmdb, leveldb} for storing the '
                                                    'result')
    parser.add_flag('resize_width', type=int, default=0, help='Width images are resized to')
    parser.add_flag('resize_height', type=int, default=0, help='Height images are resized to')
    add_bool_flag(parser, 'check_size',
                  'When this option is on, check that all the datum have the same size')
    add_bool_flag(parser, 'encoded',
                  'When this option is on, the encoded image will be save in datum')
    parser.add_flag('encode_type', default='',
                    help="Optional: What type should we encode the image as ('png','jpg',...).")


def _read_file(path):
    with open(path, 'rb') as f:
        return f.read()


def image_datum(path, label, height, width, is_color, encoding):
    """Caffe's ReadImageToDatum; None when the image cannot be read (logged as Caffe does)."""
    image = images.read_image(path, height, width, is_color)
    if image is None:
        logger.error('Could not open or find file %s', path)
        return None
    if encoding:
        if (image.ndim == 3 and image.shape[2] == 3) == is_color and not height and not width \
                and images.matches_extension(path, encoding):
            return file_to_datum(_read_file(path), label)
        return image_to_datum(image, label, encoding)
    return image_to_datum(image, label)


def convert(root_folder, list_file, db_name, gray=False, shuffle=False, backend='lmdb',
            resize_height=0, resize_width=0, check_size=False, encoded=False, encode_type=''):
    """Write the images of ``list_file`` into a new database; returns the number written."""
    if encode_type and not encoded:
        logger.info('encode_type specified, assuming encoded=true.')
        encoded = True
    lines = images.read_image_list(list_file)
    if shuffle:
        logger.info('Shuffling data')
        lines = [lines[i] for i in rng.generator().permutation(len(lines))]
    logger.info('A total of %d images.', len(lines))
    data_size = None
    count = 0
    with Writer(db_name, backend) as db:
        for line_id, (name, label) in enumerate(progress(lines, len(lines), 'convert_imageset')):
            encoding = encode_type
            if encoded and not encoding:
                dot = name.rfind('.')
                if dot < 0:
                    raise DataError("%s line %d: Failed to guess the encoding of '%s' (no "
                                    'extension; give --encode_type)' % (list_file, line_id + 1,
                                                                        name))
                encoding = name[dot + 1:].lower()
            datum = image_datum(root_folder + name, label, resize_height, resize_width,
                                not gray, encoding)
            if datum is None:
                continue
            if check_size:
                if data_size is None:
                    data_size = datum.channels * datum.height * datum.width
                elif len(datum.data) != data_size:
                    raise DataError('%s line %d (%s): Incorrect data field size %d (the first '
                                    'image has %d)' % (list_file, line_id + 1, name,
                                                       len(datum.data), data_size))
            db.put('%08d_%s' % (line_id, name), datum.SerializeToString())
            count += 1
            if count % 1000 == 0:
                db.commit()
                logger.info('Processed %d files.', count)
    if count % 1000 != 0:
        logger.info('Processed %d files.', count)
    return count


def run(args):
    if not os.path.isfile(args.list_file):
        raise DataError('image list file not found: %s' % args.list_file)
    convert(args.root_folder, args.list_file, args.db_name, gray=args.gray, shuffle=args.shuffle,
            backend=backend_name(args.backend), resize_height=args.resize_height,
            resize_width=args.resize_width, check_size=args.check_size, encoded=args.encoded,
            encode_type=args.encode_type)
