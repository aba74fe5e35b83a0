"""Net surgery as in Caffe's net_surgery notebook, on the real LeNet weights: cast the inner products
into convolutions by copying params between two nets, save, reload, compare."""
import numpy as np

import cct as caffe
from cct import layers as L
from cct import params as P

SCALE = np.float32(0.00390625)


def fully_convolutional_lenet(size):
    """LeNet with ip1/ip2 turned into convolutions ('ip1-conv', 'ip2-conv'), input size x size."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, size, size]))
    n.conv1 = L.Convolution(n.data, num_output=20, kernel_size=5)
    n.pool1 = L.Pooling(n.conv1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.conv2 = L.Convolution(n.pool1, num_output=50, kernel_size=5)
    n.pool2 = L.Pooling(n.conv2, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n['ip1-conv'] = L.Convolution(n.pool2, num_output=500, kernel_size=4)
    n.relu1 = L.ReLU(n['ip1-conv'], in_place=True)
    n['ip2-conv'] = L.Convolution(n.relu1, num_output=10, kernel_size=1)
    n.prob = L.Softmax(n['ip2-conv'])
    return n.to_proto()


def test_cast_inner_products_to_convolutions(mnist, lenet_files, tmp_path):
    images, _ = mnist
    net = caffe.Net(lenet_files[0], lenet_files[1], caffe.TEST)
    model = tmp_path / 'lenet_full_conv.prototxt'
    model.write_text(str(fully_convolutional_lenet(36)))
    net_full_conv = caffe.Net(str(model), caffe.TEST)

    params = ['ip1', 'ip2']
    params_full_conv = ['ip1-conv', 'ip2-conv']
    assert [net.params[p][0].data.shape for p in params] == [(500, 800), (10, 500)]
    assert [net_full_conv.params[p][0].data.shape for p in params_full_conv] == \
        [(500, 50, 4, 4), (10, 500, 1, 1)]
    for pr, pr_conv in zip(params, params_full_conv):
        net_full_conv.params[pr_conv][0].data.flat = net.params[pr][0].data.flat
        net_full_conv.params[pr_conv][1].data[...] = net.params[pr][1].data
    for name in ('conv1', 'conv2'):
        for mine, theirs in zip(net_full_conv.params[name], net.params[name]):
            mine.data[...] = theirs.data

    weights = str(tmp_path / 'lenet_full_conv.caffemodel')
    net_full_conv.save(weights)
    reloaded = caffe.Net(str(model), weights, caffe.TEST)
    for name, blobs in net_full_conv.params.items():
        for mine, theirs in zip(blobs, reloaded.params[name]):
            np.testing.assert_array_equal(mine.data, theirs.data)

    # A 36x36 picture of four digits; the 3x3 output map sees the 28x28 windows 4 pixels apart.
    canvas = np.zeros((36, 36), np.float32)
    canvas[:28, :28] = images[0]
    canvas[8:, 8:] = np.maximum(canvas[8:, 8:], images[1])
    heatmap = reloaded.forward(data=canvas[None, None] * SCALE)['prob'].copy()
    assert heatmap.shape == (1, 10, 3, 3)
    net.blobs['data'].reshape(9, 1, 28, 28)
    windows = np.stack([canvas[4 * i:4 * i + 28, 4 * j:4 * j + 28]
                        for i in range(3) for j in range(3)])
    windowed = net.forward(data=windows[:, None] * SCALE)['prob']
    np.testing.assert_allclose(heatmap[0].reshape(10, 9).T, windowed, atol=1e-5)
    labels = mnist[1]
    assert heatmap[0, :, 2, 2].argmax() == labels[1]
    np.testing.assert_array_equal(
        net_full_conv.forward(data=canvas[None, None] * SCALE)['prob'], heatmap)
