"""cct's resume file: what Caffe's SolverState leaves out, so that a resumed run goes on exactly
where the snapshot was taken (a cct extension; Caffe restarts every data source at its first record).

Beside each ``<prefix>_iter_N.solverstate`` (or ``.solverstate.h5``) cct writes
``<prefix>_iter_N.cctstate.json``, one JSON object:

* ``format``: ``"cct-resume-state"``; ``version``: 1; ``iter``: the SolverState's iter.
* ``rng``: the state of cct's process-wide generator (dropout masks, stochastic pooling,
  DummyData fillers), as numpy's ``bit_generator.state``.
* ``nets``: ``{"train": {layer: state}, "test": [{layer: state}, ...]}``: for every layer that keeps
  one (``Layer.resume_state``), its read position and private generators: Data the key of the
  next record (hex) and the transform's generator; ImageData the next line, the shuffled order
  (line numbers) and its generators; HDF5Data the file and row to go on from and both orders.

Resuming reads it when it is there and its ``iter`` matches; a solverstate without one (written
by real Caffe, or by a cct before this file existed) resumes as Caffe does, data from the start,
and the log says so. MemoryData's position is the script's to set (pycaffe scripts call
``set_input_arrays`` again after a restore, which starts from the first item).
"""
import json
import os

from cct import rng
from cct.errors import SolverError
from cct.log import logger

FORMAT = 'cct-resume-state'
VERSION = 1


def path_for(state_file):
    """``<prefix>_iter_N.cctstate.json`` for ``<prefix>_iter_N.solverstate[.h5]``."""
    state_file = os.fspath(state_file)
    for suffix in ('.solverstate.h5', '.solverstate'):
        if state_file.endswith(suffix):
            return state_file[:-len(suffix)] + '.cctstate.json'
    return state_file + '.cctstate.json'


def collect(solver):
    """The resume state of ``solver`` as a JSON-able dict."""
    return {'format': FORMAT, 'version': VERSION, 'iter': solver.iter, 'rng': rng.get_state(),
            'nets': {'train': solver.net.resume_state(),
                     'test': [net.resume_state() for net in solver.test_nets]}}


def to_bytes(state):
    return json.dumps(state, sort_keys=True).encode()


def restore(solver, state_file):
    """Put back the resume state written beside ``state_file``, or say that there is none."""
    path = path_for(state_file)
    if not os.path.exists(path):
        logger.info('No cct resume state (%s) beside %s: the data layers start from their first '
                    'record, as Caffe resumes', os.path.basename(path), state_file)
        return
    try:
        with open(path, 'rb') as f:
            state = json.loads(f.read())
    except (OSError, ValueError) as e:
        raise SolverError('%s: cannot read the cct resume state: %s' % (path, e)) from None
    if not isinstance(state, dict) or state.get('format') != FORMAT:
        raise SolverError('%s: not a cct resume state (no "format": "%s")' % (path, FORMAT))
    if state.get('version') != VERSION:
        raise SolverError('%s: cct resume state version %s; this cct reads version %d'
                          % (path, state.get('version'), VERSION))
    if state.get('iter') != solver.iter:
        logger.warning('%s is for iteration %s, %s for iteration %d: ignored; the data layers '
                       'start from their first record, as Caffe resumes', path,
                       state.get('iter'), state_file, solver.iter)
        return
    nets = state['nets']
    solver.net.set_resume_state(nets['train'], path)
    if len(nets['test']) != len(solver.test_nets):
        logger.warning('%s has resume states for %d test nets, the solver has %d',
                       path, len(nets['test']), len(solver.test_nets))
    for net, states in zip(solver.test_nets, nets['test']):
        net.set_resume_state(states, path)
    rng.set_state(state['rng'])
    logger.info('Resuming the data sources and random generators from %s', path)
