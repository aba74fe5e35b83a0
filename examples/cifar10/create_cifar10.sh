#!/usr/bin/env sh
# Convert CIFAR-10's binary batches to LMDBs and compute their mean image, as Caffe's
# examples/cifar10/create_cifar10.sh does. Run from the repository root with the binary version's
# files (data_batch_1.bin ... data_batch_5.bin, test_batch.bin) in data/cifar10 (DATA=... elsewhere).
set -e

EXAMPLE=examples/cifar10
DATA=${DATA:-data/cifar10}
DBTYPE=${DBTYPE:-lmdb}

echo "Creating $DBTYPE..."

rm -rf $EXAMPLE/cifar10_train_$DBTYPE $EXAMPLE/cifar10_test_$DBTYPE

cct convert_cifar $DATA $EXAMPLE $DBTYPE

echo "Computing image mean..."

cct compute_image_mean -backend=$DBTYPE \
  $EXAMPLE/cifar10_train_$DBTYPE $EXAMPLE/mean.binaryproto

echo "Done."
