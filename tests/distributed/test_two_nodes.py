"""Two compute groups on a two-node Ray cluster (ray.cluster_utils.Cluster, both nodes on this
machine, one CPU and one custom resource each), so each group runs on its own node and the server
sends models and receives gradients across nodes."""
import pytest

from cct.distributed import train_grouped

from conftest import test_accuracies, write_solver


@pytest.fixture(scope='module')
def two_nodes(ray_token):
    import ray
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={
        'num_cpus': 1, 'resources': {'node_a': 1}, 'include_dashboard': False,
        'object_store_memory': 500_000_000})
    try:
        cluster.add_node(num_cpus=1, resources={'node_b': 1}, object_store_memory=500_000_000)
        ray.init(address=cluster.address, log_to_driver=False)
        yield ray
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_two_groups_on_two_nodes_reach_plain_accuracy(two_nodes, digits, cct_log):
    assert len([n for n in two_nodes.nodes() if n['Alive']]) == 2
    path = write_solver(digits, 'nodes', max_iter=300, test_interval=300, display=50,
                        test_initialization='false')
    trainer = train_grouped(path, 2, 1, worker_cpus=1,
                            group_resources=[{'node_a': 1}, {'node_b': 1}], timeout=120)
    log = cct_log()
    assert trainer.iteration == 300
    assert test_accuracies(log)[-1] >= 0.97
    assert 'Group 0: ' in log and 'Group 1: ' in log and 'staleness mean' in log
