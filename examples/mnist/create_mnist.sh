#!/usr/bin/env sh
# Convert the MNIST idx files to LMDBs (or LevelDBs: BACKEND=leveldb), as Caffe's
# examples/mnist/create_mnist.sh does. Run from the repository root, with the four files from
# http://yann.lecun.com/exdb/mnist/ in data/mnist (gzipped or not; DATA=... points elsewhere).
set -e

EXAMPLE=examples/mnist
DATA=${DATA:-data/mnist}
BACKEND=${BACKEND:-lmdb}

# The idx file, or its .gz as downloaded.
idx() {
  if [ -f "$DATA/$1" ]; then echo "$DATA/$1"; else echo "$DATA/$1.gz"; fi
}

echo "Creating ${BACKEND}..."

rm -rf $EXAMPLE/mnist_train_${BACKEND}
rm -rf $EXAMPLE/mnist_test_${BACKEND}

cct convert_mnist "$(idx train-images-idx3-ubyte)" "$(idx train-labels-idx1-ubyte)" \
  $EXAMPLE/mnist_train_${BACKEND} --backend=${BACKEND}
cct convert_mnist "$(idx t10k-images-idx3-ubyte)" "$(idx t10k-labels-idx1-ubyte)" \
  $EXAMPLE/mnist_test_${BACKEND} --backend=${BACKEND}

echo "Done."
