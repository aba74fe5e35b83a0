"""Fixtures of the compute-group tests: examples/digits made once per session in a temporary
folder, one Ray per test module (2 CPUs, a 1 GB object store, the dashboard off) with a fresh token
in RAY_AUTH_TOKEN, and cct's log as text."""
import contextlib
import importlib.util
import logging
import os
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
    # address='local': a Ray of the tests' own, never another program's on this machine.
    ray.init(address='local', num_cpus=2, include_dashboard=False,
             object_store_memory=1_000_000_000, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture
def cct_log(caplog):
    """cct's INFO log lines of the test, as text (``cct_log()``)."""
    caplog.set_level(logging.INFO, logger='cct')
    return lambda: '\n'.join(record.getMessage() for record in caplog.records)
