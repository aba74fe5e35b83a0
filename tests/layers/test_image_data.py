"""ImageData: list files (paths with spaces, root_folder), OpenCV's BGR pixels, resizing, grey,
shuffle per epoch, rand_skip, crops of differently sized images, and the errors naming the list
line."""
import cv2
import numpy as np
import pytest

import cct
from cct import rng
from cct.errors import DataError
from cct.io import parse_text
from cct.proto import caffe_pb2


@pytest.fixture
def image_folder(tmp_path):
    """Six PNG images (lossless, so pixels are known) of two sizes, and their list file."""
    gen = np.random.default_rng(0)
    root = tmp_path / 'images'
    (root / 'sub dir').mkdir(parents=True)
    pictures, lines = [], []
    for i in range(6):
        picture = gen.integers(0, 256, (9, 8, 3) if i != 4 else (11, 10, 3), dtype=np.uint8)
        name = 'sub dir/img %d.png' % i
        cv2.imwrite(str(root / name), picture)
        pictures.append(picture)
        lines.append('%s %d' % (name, 10 + i))
    (tmp_path / 'list.txt').write_text('\n'.join(lines) + '\n')
    return tmp_path, pictures


def image_net(folder, batch_size, params='', transform='', phase=caffe_pb2.TEST, seed=1):
    rng.set_random_seed(seed)
    text = '''layer { name: "images" type: "ImageData" top: "data" top: "label"
                      transform_param { %s }
                      image_data_param { source: "%s/list.txt" root_folder: "%s/images/"
                                         batch_size: %d %s } }''' % (transform, folder, folder,
                                                                      batch_size, params)
    return cct.Net(parse_text(text, caffe_pb2.NetParameter()), phase)


def test_reads_bgr_pixels_and_labels_in_list_order(image_folder):
    folder, pictures = image_folder
    net = image_net(folder, 2)
    assert net.blobs['data'].shape == (2, 3, 9, 8)
    for batch in range(2):
        net.forward()
        for item in range(2):
            index = 2 * batch + item
            np.testing.assert_array_equal(net.blobs['data'].data[item],
                                          pictures[index].transpose(2, 0, 1))
        np.testing.assert_array_equal(net.blobs['label'].data, [10 + 2 * batch, 11 + 2 * batch])


def test_resize_grey_and_wrap(image_folder):
    folder, pictures = image_folder
    net = image_net(folder, 4, 'new_height: 5 new_width: 7 is_color: false')
    assert net.blobs['data'].shape == (4, 1, 5, 7)
    net.forward()
    net.forward()  # items 4, 5, then 0, 1 again
    for item, index in enumerate([4, 5, 0, 1]):
        grey = cv2.imread(str(folder / 'images' / ('sub dir/img %d.png' % index)),
                          cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(net.blobs['data'].data[item, 0], cv2.resize(grey, (7, 5)))
    np.testing.assert_array_equal(net.blobs['label'].data, [14, 15, 10, 11])


def test_shuffle_visits_every_image_once_per_epoch_in_new_orders(image_folder):
    folder, _ = image_folder
    net = image_net(folder, 6, 'shuffle: true new_height: 9 new_width: 8')
    epochs = []
    for _ in range(4):
        net.forward()
        epochs.append(tuple(net.blobs['label'].data.astype(int)))
    assert all(sorted(epoch) == list(range(10, 16)) for epoch in epochs)
    assert len(set(epochs)) > 1
    assert epochs[0] != tuple(range(10, 16)) or epochs[1] != tuple(range(10, 16))


def test_crop_takes_images_of_different_sizes(image_folder):
    folder, pictures = image_folder
    net = image_net(folder, 6, transform='crop_size: 6')
    net.forward()
    centre = pictures[4][2:8, 2:8].transpose(2, 0, 1)  # (11 - 6) // 2, (10 - 6) // 2
    np.testing.assert_array_equal(net.blobs['data'].data[4], centre)


def test_a_missing_image_names_its_line(image_folder):
    folder, _ = image_folder
    with open(folder / 'list.txt', 'a') as f:
        f.write('sub dir/gone.png 3\n')
    net = image_net(folder, 7, 'new_height: 9 new_width: 8')
    with pytest.raises(DataError, match="Layer 'images' \\(type ImageData\\): .*list.txt line 7 "
                                        '.*Could not load sub dir/gone.png'):
        net.forward()


def test_size_mismatch_without_crop_and_bad_parameters(image_folder):
    folder, _ = image_folder
    net = image_net(folder, 6)
    with pytest.raises(DataError, match='line 5 .*the image is 3 x 11 x 10, the batch 3 x 9 x 8'):
        net.forward()
    with pytest.raises(DataError, match='requires new_height and new_width to be set at the same'):
        image_net(folder, 2, 'new_height: 5')
    (folder / 'list.txt').write_text('')
    with pytest.raises(DataError, match='File is empty'):
        image_net(folder, 2)
    with pytest.raises(DataError, match='image list file not found'):
        image_net(folder / 'elsewhere', 2)


def test_rand_skip_starts_below_it_and_reads_on_in_order(image_folder):
    """Caffe's rand_skip: the first line read is a random one of the first rand_skip lines; the
    list is read in order from there (and a skip past the list's end is an error)."""
    folder, _ = image_folder
    firsts = set()
    for seed in range(12):
        net = image_net(folder, 3, 'rand_skip: 4 new_height: 9 new_width: 8', seed=seed)
        net.forward()
        labels = net.blobs['label'].data.astype(int)
        start = labels[0] - 10
        assert 0 <= start < 4
        assert list(labels) == [10 + (start + i) % 6 for i in range(3)]
        firsts.add(start)
    assert len(firsts) > 1
    failures = 0
    for seed in range(5):
        try:
            image_net(folder, 3, 'rand_skip: 1000', seed=seed)
        except DataError as e:
            assert 'Not enough points to skip' in str(e)
            failures += 1
    assert failures >= 1
