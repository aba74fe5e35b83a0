"""cct.testing.isolated: outcomes come back per case, and a case that kills the child (a signal) or
hangs fails naming that case, so the crash tests built on it can fail."""
import pytest

from cct.testing.isolated import ChildCrashed, run_cases

CHILD = '''
import os, signal, time
from cct.errors import NetError

def run_case(case):
    if case == 'segfault':
        os.kill(os.getpid(), signal.SIGSEGV)
    if case == 'hang':
        time.sleep(60)
    if case == 'cct error':
        raise NetError('bad net')
    if case == 'type error':
        raise TypeError('a bug')
'''


def test_outcomes_per_case():
    outcomes = run_cases(CHILD, ['fine', 'cct error', 'type error'])
    assert outcomes[0] is None
    assert outcomes[1] == ['NetError', True, 'bad net']
    assert outcomes[2][:2] == ['TypeError', False] and 'Traceback' in outcomes[2][2]


@pytest.mark.parametrize('case, status', [('segfault', 'status -11'), ('hang', 'status None')])
def test_a_crash_or_hang_names_the_case(case, status):
    with pytest.raises(ChildCrashed, match="%s while running case 1: '%s'" % (status, case)):
        run_cases(CHILD, ['fine', case, 'fine'], timeout=3)
