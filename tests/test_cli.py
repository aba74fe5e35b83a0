"""The ``cct`` command itself (cct/cli.py): ``--version``, and ``--help``'s list of actions with
whole first sentences, no RST markup, and how threads are set."""
import importlib
import os
import re

import pytest

import cct
from cct import cli
from cct.tools import ACTIONS


def test_version(capsys):
    assert cli.main(['--version']) == 0
    assert capsys.readouterr().out == 'cct version %s\n' % cct.__version__
    with open(os.path.join(os.path.dirname(__file__), '..', 'pyproject.toml')) as f:
        declared = re.search(r'^version = "(.+)"', f.read(), flags=re.M).group(1)
    assert declared == cct.__version__


def test_help_lists_every_action_in_whole_sentences(capsys):
    assert cli.main(['--help']) == 0
    out = capsys.readouterr().out
    assert '``' not in out and 'cct --version' in out
    listing = out.split('Available cct actions:\n')[1].split('\n\n')[0]
    entries = re.split(r'\n  (?=\S)', '\n' + listing)[1:]
    assert [entry.split()[0] for entry in entries] == ACTIONS
    for name, entry in zip(ACTIONS, entries):
        text = ' '.join(entry.split()[1:])
        assert text.endswith('.') and len(text) > 30, name
        doc = ' '.join(importlib.import_module(cli._module_name(name)).__doc__.split())
        assert doc.replace('``', '').startswith(text), name
    assert all(len(line) <= 100 for line in out.splitlines())
    assert 'OMP_NUM_THREADS=N' in out


def test_summary_takes_the_first_sentence_across_lines():
    doc = '''Show things (Caffe's ``caffe x``): the CPU, its
    cores and flags. More here.

    Another paragraph.'''
    assert cli.summary(doc) == "Show things (Caffe's caffe x): the CPU, its cores and flags."
    assert cli.summary('No full stop') == 'No full stop'


def test_action_help_shows_no_rst_markup(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(['train', '--help'])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert 'cct train --solver S' in out and '``' not in out
