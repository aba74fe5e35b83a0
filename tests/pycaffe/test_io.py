"""pycaffe's caffe.io (cct/io/pycaffe_io.py, cct/io/images.py): Transformer order of operations,
image loading and resizing (golden values from scikit-image 0.26, which pycaffe uses), oversampling,
and the Datum/BlobProto conversions."""
import numpy as np
import pytest
from PIL import Image

import cct as caffe
from cct.proto import caffe_pb2

# skimage.transform.resize(image, shape, order) of the images built in the tests below.
SKIMAGE_UP_3x7 = np.array([
    [0.1626984, 0.234127, 0.2976191, 0.2777778, 0.3968254, 0.515873, 0.5873016],
    [0.6904762, 0.7619048, 0.7142857, 0.4166667, 0.5357143, 0.4047619, 0.2261905],
    [0.2460318, 0.3174603, 0.4365079, 0.5555556, 0.6746032, 0.7103175, 0.6984127]])
SKIMAGE_DOWN_4x3 = np.array([
    [0.1617855, 0.6125221, 0.3418045], [0.3277177, 0.6499112, 0.2508827],
    [0.684615, 0.3089503, 0.1349807], [0.6192078, 0.159099, 0.2688243]])
SKIMAGE_DOWN_4x3_NEAREST = np.array([
    [0.1217693, 0.8035684, 0.3426815], [0.4214783, 0.5210435, 0.299938],
    [0.8038549, 0.1217023, 0.078911], [0.4214413, 0.0217024, 0.3359998]])


def test_resize_image_matches_scikit_image_when_enlarging():
    image = (np.arange(20, dtype=np.float32).reshape(4, 5, 1) % 7) / 6
    resized = caffe.io.resize_image(image, (3, 7))
    assert resized.shape == (3, 7, 1) and resized.dtype == np.float32
    np.testing.assert_allclose(resized[:, :, 0], SKIMAGE_UP_3x7, atol=2e-7)


def test_resize_image_matches_scikit_image_when_shrinking_with_antialiasing():
    image = (np.arange(36, dtype=np.float32).reshape(6, 6, 1) ** 2 % 11) / 10
    np.testing.assert_allclose(caffe.io.resize_image(image, (4, 3))[:, :, 0], SKIMAGE_DOWN_4x3,
                               atol=2e-7)
    np.testing.assert_allclose(caffe.io.resize_image(image, (4, 3), interp_order=0)[:, :, 0],
                               SKIMAGE_DOWN_4x3_NEAREST, atol=2e-7)


def test_resize_image_keeps_value_range_and_constant_images():
    image = ((np.arange(20, dtype=np.float32).reshape(4, 5, 1) % 7) / 6) * 200 + 10
    resized = caffe.io.resize_image(np.repeat(image, 3, axis=2), (3, 7))
    np.testing.assert_allclose(resized[:, :, 1], SKIMAGE_UP_3x7 * 200 + 10, rtol=1e-5)
    constant = caffe.io.resize_image(np.full((5, 5, 3), 7.0), (2, 9))
    assert constant.shape == (2, 9, 3) and (constant == 7).all()
    four_channels = caffe.io.resize_image(np.ones((4, 4, 4)), (8, 8))
    assert four_channels.shape == (8, 8, 4) and np.allclose(four_channels, 1)


def test_load_image_color_grey_and_alpha(tmp_path):
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[1, 1] = (0, 255, 0)
    path = str(tmp_path / 'rgb.png')
    Image.fromarray(rgb).save(path)
    image = caffe.io.load_image(path)
    assert image.shape == (3, 4, 3) and image.dtype == np.float32
    np.testing.assert_array_equal(image[0, 0], [1, 0, 0])
    grey = caffe.io.load_image(path, color=False)
    assert grey.shape == (3, 4, 1)
    # scikit-image's rgb2gray weights, which pycaffe's grey loading uses.
    assert grey[0, 0, 0] == pytest.approx(0.2125) and grey[1, 1, 0] == pytest.approx(0.7154)
    rgba = np.dstack([rgb, np.full((3, 4), 255, np.uint8)])
    Image.fromarray(rgba).save(path)
    np.testing.assert_array_equal(caffe.io.load_image(path), image)
    Image.fromarray(np.full((2, 2), 51, np.uint8)).save(path)
    tiled = caffe.io.load_image(path)
    assert tiled.shape == (2, 2, 3) and np.allclose(tiled, 0.2)
    assert caffe.io.load_image(path, color=False).shape == (2, 2, 1)


def test_oversample_gives_corners_centre_and_mirrors():
    image = np.arange(5 * 6, dtype=np.float32).reshape(5, 6, 1)
    crops = caffe.io.oversample([image, image + 100], (3, 4))
    assert crops.shape == (20, 3, 4, 1)
    np.testing.assert_array_equal(crops[0], image[0:3, 0:4])
    np.testing.assert_array_equal(crops[1], image[0:3, 2:6])
    np.testing.assert_array_equal(crops[2], image[2:5, 0:4])
    np.testing.assert_array_equal(crops[3], image[2:5, 2:6])
    # Centre (2.5, 3) +- (1.5, 2) truncated to integers: rows 1:4, columns 1:5.
    np.testing.assert_array_equal(crops[4], image[1:4, 1:5])
    np.testing.assert_array_equal(crops[5:10], crops[0:5, :, ::-1])
    np.testing.assert_array_equal(crops[10], image[0:3, 0:4] + 100)


def make_transformer():
    transformer = caffe.io.Transformer({'data': (1, 3, 4, 5)})
    transformer.set_transpose('data', (2, 0, 1))
    transformer.set_channel_swap('data', (2, 1, 0))
    transformer.set_raw_scale('data', 255.0)
    transformer.set_mean('data', np.array([10.0, 20.0, 30.0]))
    transformer.set_input_scale('data', 0.5)
    return transformer


def test_transformer_preprocess_order():
    image = np.random.default_rng(0).random((4, 5, 3)).astype(np.float32)
    before = image.copy()
    out = make_transformer().preprocess('data', image)
    expected = (image.transpose(2, 0, 1)[[2, 1, 0]] * 255.0 -
                np.array([10.0, 20.0, 30.0])[:, None, None]) * 0.5
    assert out.shape == (3, 4, 5) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    np.testing.assert_array_equal(image, before)


def test_transformer_deprocess_inverts_preprocess():
    transformer = make_transformer()
    image = np.random.default_rng(1).random((4, 5, 3)).astype(np.float32)
    restored = transformer.deprocess('data', transformer.preprocess('data', image)[None])
    np.testing.assert_allclose(restored, image, atol=1e-5)


def test_transformer_resizes_and_resizes_mean():
    transformer = caffe.io.Transformer({'data': (2, 1, 3, 7)})
    transformer.set_transpose('data', (2, 0, 1))
    image = (np.arange(20, dtype=np.float32).reshape(4, 5, 1) % 7) / 6
    np.testing.assert_allclose(transformer.preprocess('data', image)[0], SKIMAGE_UP_3x7,
                               atol=2e-7)
    transformer.set_mean('data', image.transpose(2, 0, 1))
    assert transformer.mean['data'].shape == (1, 3, 7)
    np.testing.assert_allclose(transformer.mean['data'][0], SKIMAGE_UP_3x7, atol=2e-7)


def test_transformer_checks_its_arguments():
    transformer = caffe.io.Transformer({'data': (1, 3, 4, 5)})
    with pytest.raises(ValueError, match='not one of the net inputs'):
        transformer.set_raw_scale('label', 1)
    with pytest.raises(ValueError, match='Transpose order'):
        transformer.set_transpose('data', (1, 0))
    with pytest.raises(ValueError, match='Channel swap'):
        transformer.set_channel_swap('data', (1, 0))
    with pytest.raises(ValueError, match='Mean channels'):
        transformer.set_mean('data', np.zeros(2))


def test_datum_round_trips():
    pixels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    datum = caffe.io.array_to_datum(pixels, 7)
    assert (datum.channels, datum.height, datum.width, datum.label) == (2, 3, 4, 7)
    assert datum.data == pixels.tobytes() and not len(datum.float_data)
    back = caffe.io.datum_to_array(caffe_pb2.Datum.FromString(datum.SerializeToString()))
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, pixels)
    floats = caffe.io.array_to_datum(pixels.astype(np.float32) / 2)
    assert not floats.HasField('label') and len(floats.float_data) == 24
    np.testing.assert_array_equal(caffe.io.datum_to_array(floats), pixels / 2)
    with pytest.raises(ValueError, match='3-D'):
        caffe.io.array_to_datum(np.zeros((2, 2)))


def test_blobproto_and_blobprotovector_round_trips():
    arrays = [np.arange(6, dtype=np.float32).reshape(1, 2, 3), np.ones(4, np.float32)]
    proto = caffe.io.array_to_blobproto(arrays[0], diff=arrays[0] * 2)
    assert list(proto.shape.dim) == [1, 2, 3]
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(proto), arrays[0])
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(proto, return_diff=True),
                                  arrays[0] * 2)
    legacy = caffe_pb2.BlobProto(num=1, channels=2, height=1, width=3, data=range(6))
    assert caffe.io.blobproto_to_array(legacy).shape == (1, 2, 1, 3)
    serialized = caffe.io.arraylist_to_blobprotovector_str(arrays)
    assert isinstance(serialized, bytes)
    for got, want in zip(caffe.io.blobprotovector_str_to_arraylist(serialized), arrays):
        np.testing.assert_array_equal(got, want)
