"""Fixtures of the compute-group tests: examples/digits' LMDBs (made once per session, in
tests/conftest.py), one Ray per test module (2 CPUs, a 1 GB object store, the dashboard off) with a
fresh token in RAY_AUTH_TOKEN, and cct's log as text."""
import logging
import os
import secrets

import pytest


@pytest.fixture(scope='session')
def digits(digits_lmdbs):
    """A folder holding digits_train_lmdb and digits_test_lmdb (the session's, tests/conftest.py)."""
    return digits_lmdbs


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
