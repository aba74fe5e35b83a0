"""Make the digits LMDBs from scikit-learn's bundled handwritten digits (no download needed).

scikit-learn ships 1797 8 x 8 grey digits (values 0-16) inside its package. This script writes them
as PNG files with Caffe's ``path label`` list files, then converts them with
``cct convert_imageset`` (grey, resized to MNIST's 28 x 28), as one would prepare any image dataset
for Caffe:

    examples/digits/digits_train_lmdb   1497 digits
    examples/digits/digits_test_lmdb    the other 300 (a fixed random split)

Run it from the repository root: ``python examples/digits/create_digits.py``; then train with
``cct train --solver=examples/digits/lenet_solver.prototxt``.
"""
import argparse
import os
import shutil
import sys
import tempfile

import numpy as np

TRAIN_COUNT = 1497


def write_images(images, labels, folder, list_path):
    import cv2
    with open(list_path, 'w') as listing:
        for index, (image, label) in enumerate(zip(images, labels)):
            name = 'digit_%04d.png' % index
            cv2.imwrite(os.path.join(folder, name), image)
            listing.write('%s %d\n' % (name, label))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--output', default=os.path.join('examples', 'digits'),
                        help='folder of the two databases (default: examples/digits)')
    parser.add_argument('--backend', default='lmdb', choices=('lmdb', 'leveldb'))
    args = parser.parse_args(argv)
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit('create_digits.py needs scikit-learn: pip install -e ".[data]"')
    from cct import cli

    digits = load_digits()
    # 0..16 intensities to 0..255 grey levels, as an 8-bit image file holds them.
    images = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = digits.target
    # A fixed random split: scikit-learn orders the digits by writer, and a split by position would
    # test on writers the net never saw (about 93% instead of 98-99%).
    order = np.random.default_rng(0).permutation(len(images))
    images, labels = images[order], labels[order]
    print('Creating %s from %d scikit-learn digits...' % (args.backend, len(images)))
    with tempfile.TemporaryDirectory(prefix='cct_digits_') as scratch:
        for split, chosen in (('train', slice(0, TRAIN_COUNT)),
                              ('test', slice(TRAIN_COUNT, None))):
            folder = os.path.join(scratch, split)
            os.makedirs(folder)
            list_path = os.path.join(scratch, split + '.txt')
            write_images(images[chosen], labels[chosen], folder, list_path)
            db_path = os.path.join(args.output, 'digits_%s_%s' % (split, args.backend))
            if os.path.isdir(db_path):
                # These databases are this script's own output: rerunning it remakes them (the
                # data are fixed, so the new ones hold the same records).
                print('Replacing the existing %s' % db_path)
                shutil.rmtree(db_path)
            command = ['convert_imageset', '--gray', '--resize_height=28', '--resize_width=28',
                       '--backend=' + args.backend, folder + os.sep, list_path, db_path]
            print('cct ' + ' '.join(command))
            status = cli.main(command)
            if status:
                return status
    print('Done.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
