"""The classification flow on real Caffe LeNet weights and real MNIST images (Transformer, forward,
argmax), ``Classifier.predict`` (cct/classifier.py) and ``Detector.detect_windows``
(cct/detector.py)."""
import numpy as np
import pytest
from PIL import Image

import cct as caffe

COUNT = 100
SCALE = np.float32(0.00390625)  # lenet_train_test.prototxt's transform_param scale (1/256)


@pytest.fixture(scope='module')
def digit_files(mnist, tmp_path_factory):
    """The first COUNT MNIST test digits as PNG files, with their labels."""
    images, labels = mnist
    directory = tmp_path_factory.mktemp('digits')
    paths = []
    for i in range(COUNT):
        path = str(directory / ('%03d.png' % i))
        Image.fromarray(images[i]).save(path)
        paths.append(path)
    return paths, labels[:COUNT].astype(int)


@pytest.fixture(scope='module')
def direct_probabilities(mnist, lenet_files):
    """Softmax outputs of the net fed the pixels exactly as Caffe's data layer scales them."""
    images, _ = mnist
    net = caffe.Net(lenet_files[0], lenet_files[1], caffe.TEST)
    return net.forward_all(data=images[:COUNT, None] * SCALE)['prob']


def test_transformer_forward_argmax_flow(digit_files, lenet_files, direct_probabilities):
    paths, labels = digit_files
    net = caffe.Net(lenet_files[0], caffe.TEST, weights=lenet_files[1])
    transformer = caffe.io.Transformer({'data': net.blobs['data'].data.shape})
    transformer.set_transpose('data', (2, 0, 1))
    transformer.set_raw_scale('data', 255)
    transformer.set_input_scale('data', SCALE)
    net.blobs['data'].reshape(COUNT, 1, 28, 28)
    for i, path in enumerate(paths):
        image = caffe.io.load_image(path, color=False)
        assert image.shape == (28, 28, 1)
        net.blobs['data'].data[i] = transformer.preprocess('data', image)
    prob = net.forward()['prob']
    assert prob.shape == (COUNT, 10)
    predicted = prob.argmax(axis=1)
    np.testing.assert_array_equal(predicted, direct_probabilities.argmax(axis=1))
    np.testing.assert_allclose(prob, direct_probabilities, atol=1e-5)
    assert (predicted == labels).mean() >= 0.98
    assert net.blobs['conv1'].data.shape == (COUNT, 20, 24, 24)
    assert net.params['conv1'][0].data.shape == (20, 1, 5, 5)


def test_classifier_centre_crop_predicts_like_the_direct_path(digit_files, lenet_files,
                                                              direct_probabilities):
    paths, labels = digit_files
    classifier = caffe.Classifier(lenet_files[0], lenet_files[1], raw_scale=255,
                                  input_scale=SCALE)
    images = [caffe.io.load_image(path, color=False) for path in paths]
    prob = classifier.predict(images, oversample=False)
    assert prob.shape == (COUNT, 10)
    np.testing.assert_allclose(prob, direct_probabilities, atol=1e-5)
    assert (prob.argmax(axis=1) == labels).mean() >= 0.98


def test_classifier_oversample_averages_the_ten_crops(mnist, lenet_files):
    images, _ = mnist
    classifier = caffe.Classifier(lenet_files[0], lenet_files[1], raw_scale=255,
                                  input_scale=SCALE)
    pixels = images[:8, :, :, None].astype(np.float32) / 255
    prob = classifier.predict(list(pixels))
    # Image size equals the crop size: the 5 crops are the image, the 5 mirrors its mirror.
    direct = classifier.forward_all(data=images[:8, None] * SCALE)['prob'].copy()
    mirrored = classifier.forward_all(data=images[:8, None, :, ::-1] * SCALE)['prob']
    np.testing.assert_allclose(prob, (direct + mirrored) / 2, atol=1e-5)


def colour_net(tmp_path):
    """A 3-channel net whose output is the mean of each channel of its 8x8 input."""
    n = caffe.NetSpec()
    n.data = caffe.layers.Input(shape=dict(dim=[2, 3, 8, 8]))
    n.means = caffe.layers.Pooling(n.data, kernel_size=8, pool=caffe.params.Pooling.AVE)
    path = tmp_path / 'colour.prototxt'
    path.write_text(str(n.to_proto()))
    weights = tmp_path / 'colour.caffemodel'
    caffe.Net(str(path), caffe.TEST).save(str(weights))
    return str(path), str(weights)


def test_detector_classifies_each_window(tmp_path):
    picture = np.zeros((16, 24, 3), np.uint8)
    picture[:8, :8] = (255, 0, 0)
    picture[8:, 12:] = (0, 0, 255)
    image_path = str(tmp_path / 'picture.png')
    Image.fromarray(picture).save(image_path)
    detector = caffe.Detector(*colour_net(tmp_path), raw_scale=255)
    windows = [np.array([0, 0, 8, 8]), np.array([8, 12, 16, 24]), np.array([0, 12, 8, 24])]
    detections = detector.detect_windows([(image_path, windows)])
    assert [d['filename'] for d in detections] == [image_path] * 3
    assert [tuple(d['window']) for d in detections] == [tuple(w) for w in windows]
    means = np.array([d['prediction'].ravel() for d in detections])
    np.testing.assert_allclose(means, [[255, 0, 0], [0, 0, 255], [0, 0, 0]], atol=1e-3)


def test_detector_context_padding_fills_outside_with_the_mean(tmp_path):
    detector = caffe.Detector(*colour_net(tmp_path), mean=np.array([30.0, 60.0, 90.0]),
                              raw_scale=255, context_pad=2)
    assert tuple(detector.crop_dims) == (8, 8, 3)
    np.testing.assert_allclose(detector.crop_mean.ravel(), np.array([30, 60, 90]) / 255)
    image = np.ones((10, 10, 3), np.float32)
    crop = detector.crop(image, np.array([0, 0, 9, 9]))
    assert crop.shape == (8, 8, 3)
    # The window touches the image's top-left corner, so the context there is padding.
    np.testing.assert_allclose(crop[0, 0], np.array([30, 60, 90]) / 255, rtol=1e-6)
    np.testing.assert_allclose(crop[4, 4], 1.0)


def test_detect_selective_search_uses_the_proposal_module(tmp_path, monkeypatch):
    import sys
    import types
    picture = np.zeros((16, 24, 3), np.uint8)
    picture[8:, 12:] = (0, 255, 0)
    Image.fromarray(picture).save(str(tmp_path / 'p.png'))
    detector = caffe.Detector(*colour_net(tmp_path), raw_scale=255)
    monkeypatch.setitem(sys.modules, 'selective_search_ijcv_with_python', None)
    with pytest.raises(ImportError, match='needs the external selective_search_ijcv_with_python'):
        detector.detect_selective_search([str(tmp_path / 'p.png')])
    calls = []

    def get_windows(filenames, cmd):
        calls.append((filenames, cmd))
        return [np.array([[8, 12, 16, 24], [0, 0, 8, 8]])]
    module = types.ModuleType('selective_search_ijcv_with_python')
    module.get_windows = get_windows
    monkeypatch.setitem(sys.modules, 'selective_search_ijcv_with_python', module)
    monkeypatch.chdir(tmp_path)
    detections = detector.detect_selective_search(['p.png'])
    assert calls == [([str(tmp_path / 'p.png')], 'selective_search_rcnn')]
    assert [d['filename'] for d in detections] == [str(tmp_path / 'p.png')] * 2
    np.testing.assert_allclose([d['prediction'].ravel() for d in detections],
                               [[0, 255, 0], [0, 0, 0]], atol=1e-3)
