"""The placement check (no Ray needed): a layout is refused, naming what is missing, when the
cluster's free resources or any single node cannot hold its workers."""
import pytest

from cct.distributed import cluster
from cct.errors import CctError


def test_totals_and_single_nodes_are_checked():
    demands = cluster.worker_demands(2, 2, 1.0)
    assert demands == [{'CPU': 1.0}] * 4
    nodes = [{'CPU': 2.0, 'memory': 1e9}, {'CPU': 2.0}]
    cluster.check_placement(demands, {'CPU': 4.0}, nodes)
    with pytest.raises(CctError, match='missing CPU: 4 needed, 3 available'):
        cluster.check_placement(demands, {'CPU': 3.0}, nodes)
    # Enough CPUs in total, but no node has the group's resource and a CPU together.
    split = cluster.worker_demands(2, 1, 1.0, [{'a': 1}, {'b': 1}])
    with pytest.raises(CctError, match='no Ray node can hold worker 1 .it needs CPU 1, b 1'):
        cluster.check_placement(split, {'CPU': 2.0, 'a': 1, 'b': 1},
                                [{'CPU': 1.0, 'a': 1}, {'CPU': 1.0}, {'b': 1}])
    cluster.check_placement(split, {'CPU': 2.0, 'a': 1, 'b': 1},
                            [{'CPU': 1.0, 'a': 1}, {'CPU': 1.0, 'b': 1}])


def test_local_default_shares_the_cores():
    cores = cluster.usable_cores()
    assert cluster.default_worker_cpus(cores, True) == 1.0
    assert cluster.default_worker_cpus(cores * 3, True) == pytest.approx(1 / 3, abs=1e-4)
    assert cluster.default_worker_cpus(cores * 3, False) == 1.0
