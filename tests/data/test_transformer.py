"""DataTransformer: every transform_param option against a hand computation in Caffe's order and
float arithmetic ((pixel - mean) * scale, mean indexed at the uncropped position, mirror after the
crop), the random crop/mirror draws, encoded datums with force_color/force_gray, and the bad
settings."""
import cv2
import numpy as np
import pytest

from cct import rng
from cct.data.datum import datum_to_image
from cct.data.transformer import DataTransformer, read_mean_file
from cct.errors import DataError
from cct.io import parse_text
from cct.proto import caffe_pb2

TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST


def make(text, phase=TEST, dtype=np.float32, seed=5):
    rng.set_random_seed(seed)
    param = parse_text(text, caffe_pb2.TransformationParameter())
    return DataTransformer(param, phase, dtype, 'test transformer')


def run(transformer, image):
    shape = transformer.output_shape(image, 'image')
    out = np.empty(shape, transformer.dtype)
    transformer.transform(image, out, 'image')
    return out


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, (3, 7, 6), dtype=np.uint8)


def write_mean(path, mean):
    proto = caffe_pb2.BlobProto(num=1, channels=mean.shape[0], height=mean.shape[1],
                                width=mean.shape[2])
    proto.data.extend(mean.ravel().tolist())
    path.write_bytes(proto.SerializeToString())
    return str(path)


def test_scale_alone(image):
    out = run(make('scale: 0.00390625'), image)
    np.testing.assert_array_equal(out, image.astype(np.float32) * np.float32(0.00390625))
    assert out.dtype == np.float32


def test_mean_is_subtracted_before_scaling(image):
    out = run(make('scale: 0.0078125 mean_value: 127.5'), image)
    expected = (image.astype(np.float32) - np.float32(127.5)) * np.float32(0.0078125)
    np.testing.assert_array_equal(out, expected)
    assert out.min() >= -1 and out.max() <= 1


def test_one_mean_value_per_channel(image):
    out = run(make('mean_value: 104 mean_value: 117 mean_value: 123 scale: 0.017'), image)
    means = np.array([104, 117, 123], np.float32)[:, None, None]
    np.testing.assert_array_equal(out, (image.astype(np.float32) - means) * np.float32(0.017))


def test_float64_arithmetic(image):
    out = run(make('mean_value: 0.3 scale: 0.1', dtype=np.float64), image)
    # Caffe<double> widens the float fields: double(float(0.3)), double(float(0.1)).
    expected = (image.astype(np.float64) - np.float64(np.float32(0.3))) * \
        np.float64(np.float32(0.1))
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.float64


def test_mean_file_is_indexed_at_the_uncropped_position(image, tmp_path):
    mean = np.random.default_rng(1).uniform(0, 255, image.shape).astype(np.float32)
    path = write_mean(tmp_path / 'mean.binaryproto', mean)
    np.testing.assert_array_equal(read_mean_file(path), mean)
    out = run(make('mean_file: "%s" crop_size: 4 scale: 0.5' % path), image)
    h_off, w_off = (7 - 4) // 2, (6 - 4) // 2  # TEST: the centre window, rounded down
    window = np.s_[:, h_off:h_off + 4, w_off:w_off + 4]
    np.testing.assert_array_equal(out, (image[window].astype(np.float32) - mean[window]) *
                                  np.float32(0.5))


def find_window(out, image, crop, mirrored):
    """The (h_off, w_off) of the crop window ``out`` was taken from, or None."""
    source = out[..., ::-1] if mirrored else out
    for h in range(image.shape[1] - crop + 1):
        for w in range(image.shape[2] - crop + 1):
            if np.array_equal(source, image[:, h:h + crop, w:w + crop]):
                return h, w
    return None


def test_train_crop_draws_every_window(image):
    transformer = make('crop_size: 5', phase=TRAIN)
    seen = {find_window(run(transformer, image), image, 5, False) for _ in range(200)}
    assert seen == {(h, w) for h in range(3) for w in range(2)}


def test_mirror_flips_at_random_in_test_too(image):
    transformer = make('mirror: true')
    flips = [np.array_equal(run(transformer, image), image[..., ::-1].astype(np.float32))
             for _ in range(60)]
    plain = [np.array_equal(run(transformer, image), image.astype(np.float32))
             for _ in range(60)]
    assert any(flips) and any(plain)


def test_mirror_crop_and_mean_file_together(image, tmp_path):
    """The window is cut, the mean at the same uncropped window subtracted, scaled, then flipped."""
    mean = np.random.default_rng(2).uniform(0, 255, image.shape).astype(np.float32)
    transformer = make('mean_file: "%s" crop_size: 3 mirror: true scale: 2'
                       % write_mean(tmp_path / 'm.binaryproto', mean), phase=TRAIN)
    mirrored_seen = set()
    for _ in range(80):
        out = run(transformer, image)
        for mirrored in (False, True):
            # Undo the scale and the mean at each candidate window to find the one drawn.
            for h in range(5):
                for w in range(4):
                    window = np.s_[:, h:h + 3, w:w + 3]
                    expected = (image[window].astype(np.float32) - mean[window]) * np.float32(2)
                    if np.array_equal(out, expected[..., ::-1] if mirrored else expected):
                        mirrored_seen.add(mirrored)
    assert mirrored_seen == {False, True}


def test_same_seed_same_draws(image):
    def draws(seed):
        transformer = make('crop_size: 4 mirror: true', TRAIN, seed=seed)
        return np.stack([run(transformer, image) for _ in range(12)])
    np.testing.assert_array_equal(draws(9), draws(9))
    assert not np.array_equal(draws(9), draws(10))


def test_float_data_datum(image):
    datum = caffe_pb2.Datum(channels=3, height=7, width=6, label=1)
    values = np.random.default_rng(3).standard_normal(image.shape).astype(np.float32)
    datum.float_data.extend(values.ravel().tolist())
    pixels = datum_to_image(datum, 'datum')
    assert pixels.dtype == np.float32
    out = run(make('mean_value: 0.25 scale: 3'), pixels)
    np.testing.assert_array_equal(out, (values - np.float32(0.25)) * np.float32(3))


def encoded(image_hwc):
    return caffe_pb2.Datum(data=cv2.imencode('.png', image_hwc)[1].tobytes(), encoded=True)


def test_encoded_datums_decode_as_stored_or_forced(image):
    colour = np.ascontiguousarray(image.transpose(1, 2, 0))
    grey = colour[:, :, 0].copy()
    np.testing.assert_array_equal(datum_to_image(encoded(colour), 'd'), image)
    np.testing.assert_array_equal(datum_to_image(encoded(grey), 'd'), grey[np.newaxis])
    forced = datum_to_image(encoded(grey), 'd', color=True)
    assert forced.shape == (3, 7, 6)
    assert all(np.array_equal(forced[c], grey) for c in range(3))
    as_grey = datum_to_image(encoded(colour), 'd', color=False)
    expected = cv2.imdecode(np.frombuffer(encoded(colour).data, np.uint8), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(as_grey, expected[np.newaxis])
    assert make('force_gray: true').decode_color is False
    assert make('force_color: true').decode_color is True


@pytest.mark.parametrize('text, shape, message', [
    ('mean_value: 1 mean_value: 2', (3, 7, 6), 'Specify either 1 mean_value or as many as '
                                               'channels: 3'),
    ('crop_size: 8', (3, 7, 6), 'crop_size 8 is larger than the image \\(7 x 6\\)'),
])
def test_bad_settings_for_an_image(text, shape, message):
    transformer = make(text)
    with pytest.raises(DataError, match=message):
        transformer.transform(np.zeros(shape, np.uint8), np.empty((3, 7, 6), np.float32), 'x')


def test_bad_settings(tmp_path):
    with pytest.raises(DataError, match='Cannot specify mean_file and mean_value'):
        make('mean_file: "m" mean_value: 3')
    with pytest.raises(DataError, match='cannot set both force_color and force_gray'):
        make('force_color: true force_gray: true')
    path = write_mean(tmp_path / 'mean.binaryproto', np.zeros((3, 5, 5), np.float32))
    transformer = make('mean_file: "%s"' % path)
    with pytest.raises(DataError, match='the mean_file .* is 3 x 5 x 5, the image 3 x 7 x 6'):
        transformer.transform(np.zeros((3, 7, 6), np.uint8), np.empty((3, 7, 6), np.float32), 'x')
    with pytest.raises(Exception, match='mean file not found'):
        make('mean_file: "%s"' % (tmp_path / 'none.binaryproto'))
