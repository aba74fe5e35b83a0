"""Weight fillers (cct/fillers.py) with Caffe's distributions (filler.hpp), tested statistically with
fixed seeds: constant, uniform, gaussian and its sparse mode, positive_unitball, xavier and msra
under each variance_norm, bilinear's exact kernel, and the errors."""
import numpy as np
import pytest

from cct import rng
from cct.blob import Blob
from cct.errors import NetError
from cct.fillers import fill
from cct.io import parse_text
from cct.proto import caffe_pb2

SHAPE = (1000, 2, 4, 5)


def filled(text, shape=SHAPE, seed=1701):
    rng.set_random_seed(seed)
    blob = Blob(*shape, dtype=np.float64)
    fill(blob, parse_text(text, caffe_pb2.FillerParameter()), 'test blob')
    return blob.data


def test_constant():
    assert (filled('type: "constant" value: 2.5', (3, 4)) == 2.5).all()
    assert not filled('', (3, 4)).any()       # an omitted filler is constant 0


def test_uniform():
    data = filled('type: "uniform" min: -2 max: 3')
    assert data.min() >= -2 and data.max() <= 3
    assert data.mean() == pytest.approx(0.5, abs=0.02)
    assert data.var() == pytest.approx(25 / 12, rel=0.02)


def test_gaussian():
    data = filled('type: "gaussian" mean: 1 std: 0.5')
    assert data.mean() == pytest.approx(1.0, abs=0.005)
    assert data.std() == pytest.approx(0.5, rel=0.01)


def test_gaussian_sparse_keeps_sparse_over_num_outputs():
    """Each element survives with probability sparse / shape(0) (Caffe's non_zero_probability)."""
    shape = (20, 1000)
    data = filled('type: "gaussian" std: 1 sparse: 5', shape)
    kept = (data != 0).mean()
    assert kept == pytest.approx(5 / 20, abs=0.01)
    assert data[data != 0].std() == pytest.approx(1.0, rel=0.03)
    assert (filled('type: "gaussian" std: 1 sparse: 0', shape) == 0).all()
    assert (filled('type: "gaussian" std: 1 sparse: 20', shape) != 0).all()


def test_positive_unitball_rows_sum_to_one():
    data = filled('type: "positive_unitball"', (50, 3, 2, 2))
    assert (data >= 0).all() and (data <= 1).all()
    np.testing.assert_allclose(data.reshape(50, -1).sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize('norm, n', [('FAN_IN', 40), ('FAN_OUT', 20000),
                                     ('AVERAGE', (40 + 20000) / 2)])
def test_xavier_and_msra_variance_norm(norm, n):
    """For (1000, 2, 4, 5): fan_in = count / shape(0) = 40, fan_out = count / shape(1) = 20000."""
    shape = SHAPE
    xavier = filled('type: "xavier" variance_norm: %s' % norm, shape)
    limit = np.sqrt(3.0 / n)
    assert np.abs(xavier).max() <= limit
    assert xavier.var() == pytest.approx(1.0 / n, rel=0.02)      # U(-s, s): s^2 / 3 = 1 / n
    msra = filled('type: "msra" variance_norm: %s' % norm, shape)
    assert msra.mean() == pytest.approx(0.0, abs=0.01 * np.sqrt(2.0 / n))
    assert msra.var() == pytest.approx(2.0 / n, rel=0.02)


def test_xavier_default_is_fan_in():
    np.testing.assert_array_equal(filled('type: "xavier"'),
                                  filled('type: "xavier" variance_norm: FAN_IN'))


def test_bilinear_kernel():
    """f = ceil(K / 2), c = (K - 1) / (2 f), w = (1 - |x / f - c|)(1 - |y / f - c|) for every
    (output, input) pair."""
    data = filled('type: "bilinear"', (2, 3, 4, 4))
    ramp = np.array([0.25, 0.75, 0.75, 0.25])
    for out in range(2):
        for inp in range(3):
            np.testing.assert_allclose(data[out, inp], np.outer(ramp, ramp))
    odd = filled('type: "bilinear"', (1, 1, 3, 3))
    np.testing.assert_allclose(odd[0, 0], np.outer([0.5, 1, 0.5], [0.5, 1, 0.5]))


def test_same_seed_same_values():
    np.testing.assert_array_equal(filled('type: "gaussian"', (5, 5), seed=3),
                                  filled('type: "gaussian"', (5, 5), seed=3))
    assert not np.array_equal(filled('type: "gaussian"', (5, 5), seed=3),
                              filled('type: "gaussian"', (5, 5), seed=4))


@pytest.mark.parametrize('text, shape, message', [
    ('type: "uniform" sparse: 3', (4, 4), 'sparsity is only supported by the gaussian filler'),
    ('type: "bilinear"', (2, 2, 3, 4), 'square kernels'),
    ('type: "bilinear"', (3, 3), '4-D blob'),
    ('type: "xavierr"', (3, 3), "unknown filler type 'xavierr'"),
    ('type: "uniform" min: 2 max: 1', (3, 3), 'min 2 must not exceed max 1'),
    ('type: "constant" sparse: -2', (3, 3), 'sparsity is only supported by the gaussian filler'),
    ('type: "gaussian" std: 0', (3, 3), 'gaussian filler std must be positive, got 0'),
    ('type: "gaussian" std: -1', (3, 3), 'gaussian filler std must be positive, got -1'),
    ('type: "gaussian" sparse: -2', (3, 3), 'sparse must be -1 .dense. or at least 0, got -2'),
    ('type: "gaussian" sparse: 4', (3, 5), 'sparse 4 exceeds the 3 outputs'),
])
def test_errors(text, shape, message):
    with pytest.raises(NetError, match=r'^test blob: .*' + message):
        filled(text, shape)
