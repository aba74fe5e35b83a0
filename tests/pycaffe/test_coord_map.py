"""Coordinate maps and crop() (cct/coord_map.py), following pycaffe's test_coord_map.py."""
import numpy as np
import pytest

import cct as caffe
from cct import layers as L
from cct import params as P
from cct.coord_map import (AxisMismatchException, UndefinedMapException, compose,
                           coord_map_from_to, crop, inverse)


def coord_net_spec(ks=3, stride=1, pad=0, pool=2, dstride=2, dpad=0):
    """The conv-pool-deconv pattern of pycaffe's coordinate mapping tests."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 100, 100]))
    n.aux = L.Input(shape=dict(dim=[2, 1, 20, 20]))
    n.conv = L.Convolution(n.data, num_output=10, kernel_size=ks, stride=stride, pad=pad)
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=pool, stride=pool, pad=0)
    deconv_ks = [s * 2 for s in dstride] if isinstance(dstride, list) else dstride * 2
    n.deconv = L.Deconvolution(n.pool, convolution_param=dict(
        num_output=10, kernel_size=deconv_ks, stride=dstride, pad=dpad))
    return n


def test_conv_pool_deconv():
    n = coord_net_spec()
    assert coord_map_from_to(n.deconv, n.data) == (1, 1, 0)  # identity for 2x pool, 2x deconv
    n = coord_net_spec(pool=4, dstride=4)
    assert coord_map_from_to(n.deconv, n.data) == (1, 1, -1)  # shift by one for 4x


def test_pass_through_and_1x1_conv_are_identity():
    n = coord_net_spec()
    expected = coord_map_from_to(n.deconv, n.data)
    n.relu = L.ReLU(n.deconv)
    n.conv1x1 = L.Convolution(n.relu, num_output=10, kernel_size=1, stride=1, pad=0)
    for top in (n.relu, n.conv1x1):
        assert coord_map_from_to(top, n.data) == expected


@pytest.mark.parametrize('pad', [1, 4, 7])
def test_padding(pad):
    n = coord_net_spec()
    _, a, b = coord_map_from_to(n.deconv, n.data)
    n = coord_net_spec(pad=pad)
    assert coord_map_from_to(n.deconv, n.data)[1:] == (a, b - pad)
    n = coord_net_spec(dpad=pad)
    assert coord_map_from_to(n.deconv, n.data)[1:] == (a, b + pad)
    n = coord_net_spec(pad=pad, dpad=pad)
    assert coord_map_from_to(n.deconv, n.data)[1:] == (a, b)


def test_multi_bottom_conv_maps_each_alike():
    n = coord_net_spec()
    n.conv_data, n.conv_aux = L.Convolution(n.data, n.aux, ntop=2, num_output=10, kernel_size=5,
                                            stride=2, pad=0)
    assert coord_map_from_to(n.conv_data, n.data) == coord_map_from_to(n.conv_aux, n.aux)


def test_rectangular_is_its_isotropic_parts():
    n3x3 = coord_net_spec(ks=3, stride=1, pad=0)
    n5x5 = coord_net_spec(ks=5, stride=2, pad=10)
    n3x5 = coord_net_spec(ks=[3, 5], stride=[1, 2], pad=[0, 10])
    ax_3x3, a_3x3, b_3x3 = coord_map_from_to(n3x3.deconv, n3x3.data)
    ax_5x5, a_5x5, b_5x5 = coord_map_from_to(n5x5.deconv, n5x5.data)
    ax_3x5, a_3x5, b_3x5 = coord_map_from_to(n3x5.deconv, n3x5.data)
    assert ax_3x3 == ax_5x5 == ax_3x5
    assert (a_3x3, b_3x3) == (a_3x5[0], b_3x5[0])
    assert (a_5x5, b_5x5) == (a_3x5[1], b_3x5[1])


def test_nd_conv():
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3, 100, 100, 100]))
    n.conv = L.Convolution(n.data, num_output=10, kernel_size=[3, 3, 3], stride=[1, 1, 1],
                           pad=[0, 1, 2])
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=2, stride=2, pad=0)
    n.deconv = L.Deconvolution(n.pool, convolution_param=dict(num_output=10, kernel_size=4,
                                                              stride=2, pad=0))
    ax, a, b = coord_map_from_to(n.deconv, n.data)
    assert ax == 1 and len(a) == len(b) == 3 and np.all(a == 1)
    assert b[0] - 1 == b[1] and b[1] - 1 == b[2]


@pytest.mark.parametrize('offset', [0, 3, 9])
def test_crop_of_crop(offset):
    n = coord_net_spec()
    ax, a, b = coord_map_from_to(n.deconv, n.data)
    n.crop = L.Crop(n.deconv, n.data, axis=2, offset=offset)
    assert coord_map_from_to(n.crop, n.data) == (ax, a, b + offset)


def test_crop_helper_builds_the_aligning_crop_layer():
    n = coord_net_spec(pool=4, dstride=4, dpad=0)
    n.crop = crop(n.deconv, n.data)
    layer = n.to_proto().layer[-1]
    assert layer.type == 'Crop' and list(layer.bottom) == ['deconv', 'data']
    assert layer.crop_param.axis == 2 and list(layer.crop_param.offset) == [1]


def test_errors():
    n = coord_net_spec()
    n.ip = L.InnerProduct(n.deconv, num_output=10)
    with pytest.raises(UndefinedMapException, match='InnerProduct'):
        coord_map_from_to(n.ip, n.data)
    with pytest.raises(AssertionError, match='scale mismatch'):
        n = coord_net_spec(pool=3, dstride=2)
        crop(n.deconv, n.data)
    with pytest.raises(AssertionError, match='negative offset'):
        n = coord_net_spec(dpad=10)
        crop(n.deconv, n.data)
    with pytest.raises(AxisMismatchException):
        compose((1, 1, 0), (2, 1, 0))
    assert inverse((1, 2.0, 3.0)) == (1, 0.5, -1.5)
    other = coord_net_spec()
    with pytest.raises(RuntimeError, match='connected by spatial layers'):
        coord_map_from_to(n.deconv, other.data)


def test_crop_aligns_a_real_deconvolution_output(tmp_path):
    """The crop() layer in a real net: 100 -> conv 98 -> pool/4 25 -> deconv x4 104 -> crop 100."""
    n = coord_net_spec(pool=4, dstride=4)
    n.crop = crop(n.deconv, n.data)
    path = tmp_path / 'fcn.prototxt'
    path.write_text(str(n.to_proto()))
    net = caffe.Net(str(path), caffe.TEST)
    assert net.blobs['deconv'].data.shape == (2, 10, 104, 104)
    out = net.forward(data=np.random.default_rng(0).standard_normal((2, 1, 100, 100)),
                      aux=np.zeros((2, 1, 20, 20)))
    assert out['crop'].shape == (2, 10, 100, 100)
    np.testing.assert_array_equal(out['crop'], net.blobs['deconv'].data[:, :, 1:101, 1:101])
