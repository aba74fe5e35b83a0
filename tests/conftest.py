"""Shared fixtures: the one way tests find ../shared (Caffe's nets, the real MNIST test set, the real
LeNet weights). CCT_SHARED overrides the default location; without it the tests that need it skip."""
import os

import pytest

_DEFAULT_SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared')


def shared_path():
    return os.path.abspath(os.environ.get('CCT_SHARED', _DEFAULT_SHARED))


@pytest.fixture(scope='session')
def shared():
    """Absolute path of ../shared (or $CCT_SHARED); skips the test when it is absent."""
    path = shared_path()
    if not os.path.isdir(os.path.join(path, 'nets')):
        pytest.skip('Caffe reference material not found at %s (set CCT_SHARED to its location)'
                    % path)
    return path


@pytest.fixture(scope='session')
def extras():
    """{extra: [requirement, ...]} as pyproject.toml's [project.optional-dependencies] declares
    them (read without tomllib, which Python 3.10 lacks)."""
    import ast
    import re
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'pyproject.toml')) as f:
        text = f.read()
    section = text.split('[project.optional-dependencies]', 1)[1].split('\n[', 1)[0]
    section = '\n'.join(line for line in section.splitlines() if not line.lstrip().startswith('#'))
    return {name: ast.literal_eval(value) for name, value in
            re.findall(r'^(\w+) = (\[.*?\])[ \t]*$', section, flags=re.M | re.S)}


@pytest.fixture(scope='session', autouse=True)
def _pristine_cct_logger():
    """The 'cct' logger as the session begins (set up before any module's fixtures run)."""
    import logging
    import cct.log  # noqa: F401  (its import-time set-up is part of the pristine state)
    log = logging.getLogger('cct')
    return list(log.handlers), log.level, log.propagate


@pytest.fixture(autouse=True)
def _restore_cct_logger(_pristine_cct_logger):
    """Undo what a test's ``init_log`` (a CLI run in-process, pycaffe's ``init_log``) did to the
    'cct' logger, so a later test's ``caplog`` still sees cct's records through the root logger.
    The state restored is the session's first, not the test's: a module-scoped fixture that ran a
    CLI in-process (examples/digits' create_digits.py) had otherwise left every later test in the
    session without records (caplog empty in test_solver_snapshots)."""
    yield
    _reset_cct_logger(_pristine_cct_logger)


def _reset_cct_logger(state):
    import logging
    log = logging.getLogger('cct')
    handlers, level, propagate = state
    for handler in log.handlers[:]:
        if handler not in handlers:
            log.removeHandler(handler)
    log.setLevel(level)
    log.propagate = propagate


@pytest.fixture(scope='session')
def digits_lmdbs(tmp_path_factory, _pristine_cct_logger):
    """examples/digits' two LMDBs (digits_train_lmdb, digits_test_lmdb), made once per session by
    create_digits.py in ``<tmp>/examples/digits``: the layout the example's prototxts name from
    the repository root. Returns that folder. The script runs cct's CLI in-process, which sets the
    log up for a terminal; the logger is reset before the first test that asked for the folder
    runs, so its ``caplog`` sees cct's records."""
    import contextlib
    import importlib.util
    folder = tmp_path_factory.mktemp('digits') / 'examples' / 'digits'
    folder.mkdir(parents=True)
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'examples', 'digits',
                          'create_digits.py')
    spec = importlib.util.spec_from_file_location('create_digits', script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with contextlib.redirect_stdout(open(os.devnull, 'w')):
        assert module.main(['--output', str(folder)]) == 0
    _reset_cct_logger(_pristine_cct_logger)
    return folder


@pytest.fixture(scope='session')
def digits_example(digits_lmdbs):
    """The root of a copy of examples/digits: its prototxts beside the session's LMDBs (run from
    there, the example's relative paths resolve)."""
    import shutil
    example = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'examples', 'digits')
    for name in ('lenet_train_test.prototxt', 'lenet_solver.prototxt'):
        shutil.copy(os.path.join(example, name), digits_lmdbs / name)
    return digits_lmdbs.parent.parent
