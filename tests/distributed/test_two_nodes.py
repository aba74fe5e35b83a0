"""Two compute groups on a two-node Ray cluster (ray.cluster_utils.Cluster, both nodes on this
machine, one CPU each), joined by address from the CLI: each group's worker takes one node's CPU,
so the server sends models and receives gradients across nodes; cct leaves the cluster at the
end. And a local Ray that cct starts itself (bounded object store) and stops."""
import pytest

from cct import cli
from cct.distributed import train_grouped
from cct.distributed.cluster import usable_cores

from grouped_helpers import test_accuracies, write_solver


@pytest.fixture(scope='module')
def two_nodes(ray_token):
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={
        'num_cpus': 1, 'resources': {'node_a': 1}, 'include_dashboard': False,
        'object_store_memory': 500_000_000})
    try:
        cluster.add_node(num_cpus=1, resources={'node_b': 1}, object_store_memory=500_000_000)
        cluster.wait_for_nodes(timeout=60)
        yield cluster
    finally:
        cluster.shutdown()


def test_two_groups_on_two_nodes_reach_plain_accuracy(two_nodes, digits, capfd):
    import ray
    path = write_solver(digits, 'nodes', max_iter=300, test_interval=300, display=50,
                        test_initialization='false')
    assert cli.main(['train', '--solver', path, '--groups', '2', '--worker-cpus', '1',
                     '--ray-address', two_nodes.address]) == 0
    log = capfd.readouterr().err
    assert 'Joining the Ray cluster at %s' % two_nodes.address in log
    assert test_accuracies(log)[-1] >= 0.97
    assert 'Group 0: ' in log and 'Group 1: ' in log and 'staleness mean' in log
    assert not ray.is_initialized()


def test_a_local_ray_is_started_and_stopped(digits, ray_token):
    import ray
    seen = []
    trainer = train_grouped(write_solver(digits, 'local', max_iter=5, test_interval=1000), 1, 1,
                            local_ray={'object_store_memory': 300_000_000}, timeout=120,
                            on_update=lambda *_: seen.append(ray.cluster_resources()['CPU']))
    assert trainer.iteration == 5 and seen[0] == usable_cores()
    assert not ray.is_initialized()
