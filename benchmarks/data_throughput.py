"""How fast the Data layer delivers CaffeNet batches, against how fast a CaffeNet training iteration
consumes them.

Builds a JPEG-encoded LMDB of 256 x 256 colour images (smooth synthetic pictures, so JPEG sizes and
decode times are like photographs') and a 3 x 256 x 256 mean file, then measures:

1. the loader alone: images/s of the prefetch thread's work (read, JPEG decode, random 227 crop,
   mirror, mean) for batches of 256 x 3 x 227 x 227;
2. the Data layer in a tight loop (forward as fast as batches come): its delivered images/s;
3. with ``--caffenet``: CaffeNet's train_val net (Caffe's bvlc_reference_caffenet) reading this
   LMDB, the time of a training iteration (forward + backward) and how long its Data layer waited.

    python benchmarks/data_throughput.py
    python benchmarks/data_throughput.py \
        --caffenet ../shared/nets/bvlc_reference_caffenet/train_val.prototxt
"""
import argparse
import os
import shutil
import tempfile
import time

import numpy as np

import cct
from cct.data.db import Writer
from cct.data.prefetch import Batch
from cct.io import parse_text, read_net_text
from cct.proto import caffe_pb2

SIDE, CROP, BATCH = 256, 227, 256


def synthetic_images(count, seed=0):
    """``count`` smooth 256 x 256 BGR images: low-frequency colour fields plus a little noise."""
    import cv2
    gen = np.random.default_rng(seed)
    for _ in range(count):
        coarse = gen.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = cv2.resize(coarse, (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
        noise = gen.normal(0, 6, image.shape)
        yield np.clip(image + noise, 0, 255).astype(np.uint8)


def build_dataset(folder, count):
    """A JPEG LMDB of ``count`` images and its mean file; returns (db path, mean path, MB)."""
    import cv2
    db_path = os.path.join(folder, 'jpeg_lmdb')
    total = np.zeros((3, SIDE, SIDE), np.float64)
    size = 0
    with Writer(db_path, 'lmdb') as db:
        for i, image in enumerate(synthetic_images(count)):
            encoded = cv2.imencode('.jpg', image)[1].tobytes()
            size += len(encoded)
            datum = caffe_pb2.Datum(data=encoded, label=i % 1000, encoded=True)
            db.put('%08d_synthetic_%d.JPEG' % (i, i), datum.SerializeToString())
            total += image.transpose(2, 0, 1)
    mean = (total / count).astype(np.float32)
    proto = caffe_pb2.BlobProto(num=1, channels=3, height=SIDE, width=SIDE)
    proto.data.extend(mean.ravel().tolist())
    mean_path = os.path.join(folder, 'mean.binaryproto')
    with open(mean_path, 'wb') as f:
        f.write(proto.SerializeToString())
    return db_path, mean_path, size / count / 1024


DATA_LAYER = '''layer { name: "data" type: "Data" top: "data" top: "label"
  transform_param { mirror: true crop_size: %d mean_file: "%s" }
  data_param { source: "%s" batch_size: %d backend: LMDB prefetch: %d } }'''


def data_net(db_path, mean_path, prefetch=4):
    text = DATA_LAYER % (CROP, mean_path, db_path, BATCH, prefetch)
    return cct.Net(parse_text(text, caffe_pb2.NetParameter()), caffe_pb2.TRAIN)


def time_loader(db_path, mean_path, batches):
    """Images/s of the loading work itself, run on this thread (no overlap, no queue)."""
    net = data_net(db_path, mean_path, prefetch=1)
    net.layers[0].prefetcher.stop()  # its thread ends: the loader is this thread's alone
    loader = net.layers[0].loader
    batch = Batch(np.float32)
    loader.load(batch)  # warm up: page in the LMDB, allocate the batch
    start = time.perf_counter()
    for _ in range(batches):
        loader.load(batch)
    return batches * BATCH / (time.perf_counter() - start)


def time_layer(db_path, mean_path, batches):
    """Images/s the Data layer's forward delivers when the net does nothing else."""
    net = data_net(db_path, mean_path)
    for _ in range(5):
        net.forward()  # through every prefetch buffer once: first-touch page faults excluded
    start = time.perf_counter()
    for _ in range(batches):
        net.forward()
    return batches * BATCH / (time.perf_counter() - start)


def time_caffenet(prototxt, db_path, mean_path, iterations):
    """(seconds per forward+backward, seconds the Data layer waited) for CaffeNet at batch 256."""
    param = read_net_text(prototxt)
    for layer in param.layer:
        if layer.type == 'Data':
            layer.data_param.source = db_path
            layer.transform_param.mean_file = mean_path
    net = cct.Net(param, caffe_pb2.TRAIN)
    data_layer = next(layer for layer in net.layers if layer.type == 'Data')
    net.forward()
    net.backward()
    waited = data_layer.wait_seconds
    start = time.perf_counter()
    for _ in range(iterations):
        net.forward()
        net.backward()
    elapsed = (time.perf_counter() - start) / iterations
    return elapsed, (data_layer.wait_seconds - waited) / iterations


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--images', type=int, default=1024, help='images in the LMDB')
    parser.add_argument('--batches', type=int, default=8, help='batches to time')
    parser.add_argument('--caffenet', default='', help="Caffe's CaffeNet train_val.prototxt")
    parser.add_argument('--iterations', type=int, default=2, help='CaffeNet iterations to time')
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix='cct_data_bench_')
    try:
        start = time.perf_counter()
        db_path, mean_path, kib = build_dataset(folder, args.images)
        print('LMDB of %d JPEG images 256 x 256 (%.1f KiB each) built in %.1f s'
              % (args.images, kib, time.perf_counter() - start))
        print('batches of %d x 3 x %d x %d, random crop, mirror, mean file' % (BATCH, CROP, CROP))
        loader_rate = time_loader(db_path, mean_path, args.batches)
        print('loader alone (one thread):   %7.0f images/s  (%.3f s per batch)'
              % (loader_rate, BATCH / loader_rate))
        layer_rate = time_layer(db_path, mean_path, args.batches)
        print('Data layer forward, no net:  %7.0f images/s  (%.3f s per batch)'
              % (layer_rate, BATCH / layer_rate))
        if args.caffenet:
            seconds, waited = time_caffenet(args.caffenet, db_path, mean_path, args.iterations)
            print('CaffeNet forward+backward:   %7.1f images/s  (%.2f s per iteration, Data layer '
                  'waited %.3f s of it)' % (BATCH / seconds, seconds, waited))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == '__main__':
    main()
