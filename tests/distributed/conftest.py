"""Fixtures of the compute-group tests: examples/digits made once per session in a temporary
folder, solver files pointing at it by absolute path, and one Ray per test module (2 CPUs, a 1 GB
object store, a fresh token in RAY_AUTH_TOKEN, the dashboard off)."""
import contextlib
import importlib.util
import logging
import os
import re
import secrets

import pytest

EXAMPLE = os.path.join(os.path.dirname(__file__), '..', '..', 'examples', 'digits')


@pytest.fixture(scope='session')
def digits(tmp_path_factory):
    """A folder holding digits_train_lmdb, digits_test_lmdb and the example's net prototxt."""
    folder = tmp_path_factory.mktemp('digits')
    spec = importlib.util.spec_from_file_location('create_digits',
                                                  os.path.join(EXAMPLE, 'create_digits.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    log = logging.getLogger('cct')
    handlers, level, propagate = list(log.handlers), log.level, log.propagate
    with contextlib.redirect_stdout(open(os.devnull, 'w')):
        assert module.main(['--output', str(folder)]) == 0
    # The script's CLI run set up cct's log for a terminal; later tests read it through caplog.
    for handler in log.handlers[:]:
        if handler not in handlers:
            log.removeHandler(handler)
    log.setLevel(level)
    log.propagate = propagate
    return folder


def write_solver(folder, name, batch_size=64, **fields):
    """A LeNet solver (the example's, with ``fields`` replacing its values) whose net reads the
    digits in ``folder`` with a train batch of ``batch_size``; returns its path."""
    net = open(os.path.join(EXAMPLE, 'lenet_train_test.prototxt')).read()
    net = net.replace('examples/digits/', str(folder) + '/')
    net = net.replace('batch_size: 64', 'batch_size: %d' % batch_size)
    net_path = os.path.join(folder, name + '_net.prototxt')
    with open(net_path, 'w') as f:
        f.write(net)
    values = {'net': '"%s"' % net_path, 'test_iter': 3, 'test_interval': 50, 'base_lr': 0.01,
              'momentum': 0.9, 'weight_decay': 0.0005, 'lr_policy': '"inv"', 'gamma': 0.0001,
              'power': 0.75, 'display': 10, 'max_iter': 60, 'random_seed': 1,
              'snapshot_after_train': 'false',
              'snapshot_prefix': '"%s"' % os.path.join(folder, name)}
    values.update(fields)
    path = os.path.join(folder, name + '_solver.prototxt')
    with open(path, 'w') as f:
        for key, value in values.items():
            f.write('%s: %s\n' % (key, value))
    return path


def losses(text):
    """{iteration: smoothed loss} of the ``Iteration N (...), loss = x`` lines of a log."""
    return {int(i): float(v) for i, v in
            re.findall(r'Iteration (\d+)(?: \(.*?\))?, loss = (\S+)', text)}


def test_accuracies(text):
    return [float(v) for v in re.findall(r'Test net output #0: accuracy = (\S+)', text)]


test_accuracies.__test__ = False


@pytest.fixture(scope='session')
def ray_token():
    """A fresh token in RAY_AUTH_TOKEN for every Ray the tests start (one per session: Ray keeps
    the first token it reads for the life of the process)."""
    previous = os.environ.get('RAY_AUTH_TOKEN')
    os.environ['RAY_AUTH_TOKEN'] = secrets.token_hex(16)
    yield os.environ['RAY_AUTH_TOKEN']
    if previous is None:
        os.environ.pop('RAY_AUTH_TOKEN', None)
    else:
        os.environ['RAY_AUTH_TOKEN'] = previous


@pytest.fixture(scope='module')
def ray_cluster(ray_token):
    """One local Ray for the module, authenticated with the session's token."""
    import ray
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=1_000_000_000,
             log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def cct_log(caplog):
    """cct's INFO log lines of the test, as text (``cct_log()``)."""
    caplog.set_level(logging.INFO, logger='cct')
    return lambda: '\n'.join(record.getMessage() for record in caplog.records)
