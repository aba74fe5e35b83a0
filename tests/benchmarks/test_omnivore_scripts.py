"""benchmarks/omnivore_simulation.py's seed list and per-seed table of the optimizer's goals, and
benchmarks/omnivore_trial_horizon.py's configuration list."""
import argparse
import importlib.util
import os
import sys

import pytest

FOLDER = os.path.join(os.path.dirname(__file__), '..', '..', 'benchmarks')


def _load(name):
    sys.path.insert(0, FOLDER)  # omnivore_trial_horizon imports omnivore_simulation
    try:
        spec = importlib.util.spec_from_file_location(name + '_under_test',
                                                      os.path.join(FOLDER, name + '.py'))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(FOLDER)


def test_seed_lists():
    seeds = _load('omnivore_simulation')._seeds
    assert seeds('3') == [3]
    assert seeds('0-3') == [0, 1, 2, 3]
    assert seeds('0-1,5,7-8') == [0, 1, 5, 7, 8]
    for text in ('0-x', '5-3', ''):
        with pytest.raises(argparse.ArgumentTypeError, match='not a seed list: %r' % text):
            seeds(text)


def _run(seed, groups, momentum, rate, total):
    return {'seed': seed, 'groups': groups, 'momentum': momentum, 'base_lr': rate,
            'time_to_target_s': total}


def test_seed_table_judges_each_seed_against_the_grid_and_both_baselines(capsys):
    module = _load('omnivore_simulation')
    grid = [{'groups': 16, 'momentum': 0.3, 'base_lr': 0.01, 'time_to_target_s': 0.9},
            {'groups': 8, 'momentum': 0.6, 'base_lr': 0.01, 'time_to_target_s': 0.99},
            {'groups': 8, 'momentum': 0.3, 'base_lr': 0.01, 'time_to_target_s': 1.9},
            {'groups': 4, 'momentum': 0.0, 'base_lr': 0.1, 'time_to_target_s': None}]
    entry = {'grid': grid, 'grid_best': grid[0], 'sync': {'time_to_target_s': 3.6},
             'async': {'time_to_target_s': None}}
    runs = [_run(0, 16, 0.3, 0.01, 3.2), _run(1, 8, 0.6, 0.01, 3.7),
            _run(2, 8, 0.3, 0.01, 3.3), _run(3, 4, 0.0, 0.1, None)]
    rows = module.seed_table(runs, entry, None, None, None, None)
    assert [(r['within_10_percent'], r['beats_baselines']) for r in rows] == \
        [(True, True), (True, False), (False, True), (False, False)]
    assert rows[3]['from_scratch_s'] is None
    assert 'over 4 seeds: (a) 2, (b) 2, both 1' in capsys.readouterr().out
    # A diverging asynchronous baseline is no bar; one that reached the target is.
    entry['async'] = {'time_to_target_s': 3.1}
    rows = module.seed_table(runs[:1], entry, None, None, None, None)
    assert not rows[0]['beats_baselines']


def test_trial_horizon_configurations():
    configs = _load('omnivore_trial_horizon')._configs
    assert configs('16/0.3/0.01,32/0/0.001') == [(16, 0.3, 0.01), (32, 0.0, 0.001)]
    assert len(configs(_load('omnivore_trial_horizon').CONFIGS)) == 7
    with pytest.raises(argparse.ArgumentTypeError, match='GROUPS/MOMENTUM/RATE'):
        configs('16/0.3')
