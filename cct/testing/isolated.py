"""Run test cases in a child Python process, so that a native crash (a signal) fails the test that
caused it, naming the case, instead of killing the whole test run.

The child executes ``setup_code`` (which defines ``run_case(case)``), then calls ``run_case`` on each
case in turn and reports each outcome on its own line as it finishes: ``None`` for success, else
the exception's class name, whether it is one of ``ALLOWED_ERRORS``, and its message.
"""
import json
import os
import subprocess
import sys

_HARNESS = r'''
import json, sys, traceback
import cct.errors
%s
cases = json.loads(sys.stdin.read())
for index, case in enumerate(cases):
    print('START %%d' %% index, flush=True)
    try:
        run_case(case)
        outcome = None
    except BaseException as error:
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        allowed = isinstance(error, %s)
        outcome = [type(error).__name__, allowed,
                   str(error) if allowed else traceback.format_exc()]
    print('DONE ' + json.dumps([index, outcome]), flush=True)
'''

# The only outcomes bad input may have, besides success: cct's own errors (cct/errors.py; each is
# also a ValueError or, for allocations, a MemoryError), and a plain ValueError for a value pycaffe
# code passes in. Anything else (TypeError, IndexError, a raw numpy or lmdb exception, a signal) is
# a bug.
ALLOWED_ERRORS = '(cct.errors.CctError, ValueError)'


class ChildCrashed(AssertionError):
    """The child ended abnormally (a signal, a timeout, or an error outside the cases)."""


def run_cases(setup_code, cases, timeout=120, env=None):
    """Run ``run_case(case)`` for each JSON-able case in a child; return one outcome per case.

    Raises ChildCrashed naming the case that was running when the child died or hung.
    """
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child_env = dict(os.environ, **(env or {}))
    child_env['PYTHONPATH'] = os.pathsep.join(filter(None, [root,
                                                            child_env.get('PYTHONPATH')]))
    try:
        done = subprocess.run([sys.executable, '-c', _HARNESS % (setup_code, ALLOWED_ERRORS)],
                              input=json.dumps(cases), capture_output=True, text=True,
                              timeout=timeout, env=child_env, cwd=root)
        stdout, stderr, status = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as expired:
        stdout = expired.stdout.decode() if isinstance(expired.stdout, bytes) else \
            (expired.stdout or '')
        stderr, status = 'timed out after %ds' % timeout, None
    outcomes, running = {}, None
    for line in stdout.splitlines():
        if line.startswith('START '):
            running = int(line.split()[1])
        elif line.startswith('DONE '):
            index, outcome = json.loads(line[5:])
            outcomes[index] = outcome
            running = None
    if status != 0 or len(outcomes) != len(cases):
        where = ('while running case %d: %r' % (running, cases[running])
                 if running is not None else 'outside the cases')
        raise ChildCrashed('the child process ended with status %s %s\n%s'
                           % (status, where, stderr[-4000:]))
    return [outcomes[i] for i in range(len(cases))]
