"""cct.parallel.split: the --devices and --split flags checked, whole-image rounding, and the auto
split's arithmetic on given timings (no device needed)."""
import pytest

from cct.errors import CctError, DeviceError
from cct.parallel.split import (AutoSplit, FixedSplit, check_batch, parse_devices, parse_split,
                                whole_images)


def test_whole_images_add_up_to_the_batch_by_largest_remainder():
    assert whole_images([0.5, 0.5], 16) == [8, 8]
    assert whole_images([0.5, 0.5], 15) == [8, 7]          # a tie goes to the earlier device
    assert whole_images([0.7, 0.2, 0.1], 10) == [7, 2, 1]
    assert whole_images([0.34, 0.33, 0.33], 10) == [4, 3, 3]
    assert whole_images([0.95, 0.05], 4) == [4, 0]          # a device may get no image
    assert whole_images([3.0, 1.0], 8) == [6, 2]            # rates need not add up to 1
    for batch in range(1, 40):
        assert sum(whole_images([0.13, 0.52, 0.35], batch)) == batch


def test_split_flag():
    assert parse_split('auto', 2) == 'auto'
    assert parse_split('', 2) == 'auto'
    assert parse_split(None, 3) == 'auto'
    assert parse_split('0.75,0.25', 2) == [0.75, 0.25]
    assert parse_split([0.5, 0.5], 2) == [0.5, 0.5]
    assert parse_split('1,0', 2) == [1.0, 0.0]


@pytest.mark.parametrize('spec, count, message', [
    ('0.5,0.5', 3, 'gives 2 fractions for 3 devices'),
    ('0.5', 2, 'gives 1 fractions for 2 devices'),
    ('1.5,-0.5', 2, 'must be a number >= 0'),
    ('0.5,0.4', 2, 'add up to 0.9, not 1'),
    ('0.6,0.6', 2, 'add up to 1.2, not 1'),
    ('half,half', 2, 'takes "auto" or one fraction per device'),
    ('nan,1', 2, 'must be a number >= 0'),
])
def test_bad_split_is_a_clear_error(spec, count, message):
    with pytest.raises(CctError, match=message):
        parse_split(spec, count)


def test_bad_devices_are_clear_errors():
    with pytest.raises(DeviceError, match='opencl:7'):
        parse_devices('cpu,opencl:7')
    with pytest.raises(DeviceError) as raised:
        parse_devices('cpu,tpu:0')
    assert 'tpu:0' in str(raised.value) and 'cpu' in str(raised.value)
    with pytest.raises(DeviceError, match='names cpu twice'):
        parse_devices('cpu,cpu')
    with pytest.raises(DeviceError, match='device names separated by commas'):
        parse_devices('cpu,')


def test_a_batch_smaller_than_the_device_count_is_an_error():
    check_batch(2, ['cpu', 'opencl:0'])
    with pytest.raises(CctError, match='a batch of 1 image cannot be split across 2 devices '
                                       r'\(cpu, opencl:0\)'):
        check_batch(1, ['cpu', 'opencl:0'])


def test_fixed_split_rounds_each_batch():
    split = FixedSplit([0.75, 0.25], ['cpu', 'opencl:0'])
    assert split.settled
    assert split.shares(64, 'a') == [48, 16]
    assert split.shares(10, 'b') == [8, 2]


def test_auto_split_gives_the_faster_device_the_larger_share():
    """Even at first; then the shares follow images per busy second, measured twice (the second
    time at the new shares); then the clock decides between those shares and the fastest device
    alone; then they stay until the input shape changes. The first pass at new shares is not
    measured."""
    split = AutoSplit(['cpu', 'opencl:0'], measure=2, rounds=2)
    assert split.shares(60, 'shape') == [30, 30]
    split.record([30, 30], [9.0, 9.0], 9.0)          # warm-up: not measured
    assert split.shares(60, 'shape') == [30, 30]
    # cpu 30 images in 1 s, opencl:0 30 in 3 s: 3 times faster.
    split.record([30, 30], [1.0, 3.0], 3.0)
    split.record([30, 30], [1.0, 3.0], 3.0)
    assert split.shares(60, 'shape') == [45, 15]
    split.record([45, 15], [9.0, 9.0], 9.0)          # warm-up at the new shares
    split.record([45, 15], [1.0, 1.0], 1.0)          # at these shares: 45/s against 15/s again
    split.record([45, 15], [1.0, 1.0], 1.2)
    assert split.shares(60, 'shape') == [45, 15]     # now timed: 1.0 and 1.2 s
    assert not split.settled
    for wall in (9.0, 1.2, 1.1):
        split.record([45, 15], [1.0, 1.0], wall)
    assert split.shares(60, 'shape') == [60, 0]      # the fastest device alone
    for wall in (9.0, 1.5, 1.4):
        split.record([60, 0], [wall, 0.0], wall)
    assert split.settled
    assert split.shares(60, 'shape') == [45, 15]     # the proportional split was faster
    split.record([45, 15], [100.0, 1.0], 100.0)      # settled: no longer measured
    assert split.shares(60, 'shape') == [45, 15]
    # A new input shape measures again, from an even split.
    assert split.shares(60, 'other shape') == [30, 30]
    assert not split.settled


def test_auto_split_drops_a_device_that_only_slows_the_pass():
    split = AutoSplit(['cpu', 'opencl:0'], measure=1, rounds=1)
    assert split.shares(20, 'shape') == [10, 10]
    split.record([10, 10], [0.0, 0.0], 0.0)
    split.record([10, 10], [1.0, 4.0], 4.0)
    assert split.shares(20, 'shape') == [16, 4]
    split.record([16, 4], [0.0, 0.0], 0.0)
    split.record([16, 4], [1.6, 1.6], 2.5)           # the synchronisations cost 0.9 s
    assert split.shares(20, 'shape') == [20, 0]
    split.record([20, 0], [0.0, 0.0], 0.0)
    split.record([20, 0], [2.0, 0.0], 2.0)
    assert split.settled and split.shares(20, 'shape') == [20, 0]
