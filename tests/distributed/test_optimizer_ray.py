"""``cct optimize`` measuring on Ray (no --simulate): every point is a real compute-group run on
the module's local Ray (2 CPUs, so 1 group of 2 workers or 2 groups of 1), timed on the wall
clock, resumed from the latest checkpoint; a tiny problem and a tiny budget."""
import json
import os

import pytest

from cct import cli

from grouped_helpers import write_solver

pytestmark = pytest.mark.usefixtures('ray_cluster')


def test_cct_optimize_runs_its_points_on_ray(digits, tmp_path, capsys):
    path = write_solver(digits, 'optray', batch_size=16, max_iter=2000, test_interval=10,
                        display=0)
    workdir = str(tmp_path / 'work')
    assert cli.main(['optimize', '--solver', path, '--workers', '2', '--worker-cpus', '1',
                     '--budget', '1.5', '--phase-seconds', '0.2', '--epoch-seconds', '0.6',
                     '--trial-updates', '3', '--target-accuracy', '0.99', '--workdir', workdir,
                     '--json']) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    tried = report['tried']
    # The cold start began with one group of two workers (momentum 0.9, rates ascending) and
    # went on from its winner's state.
    assert [(p['groups'], p['momentum']) for p in tried[:2]] == [(1, 0.9), (1, 0.9)]
    assert [p['base_lr'] for p in tried[:2]] == [0.0001, 0.001]
    # Later points start from checkpoints; one starts afresh only after a loss that blew up sent
    # training back to the state before its checkpoint (the initial one, if it was the first).
    assert tried[0]['start'] is None and any(p['start'] for p in tried[4:])
    fresh = [i for i, p in enumerate(tried) if i >= 4 and not p['start']]
    reverted = any('go back to the state before it' in d['decision']
                   for d in report['decisions'])
    assert not fresh or reverted, (fresh, report['decisions'])
    # Each point trained for its wall-clock seconds, with at least 3 updates past its start.
    for p in tried:
        assert p['diverged'] or p['seconds_per_iteration'] > 0
    runs = [json.loads(line) for line in open(os.path.join(workdir, 'measurements.jsonl'))]
    assert all(r['seconds'] >= 0.2 and r['iterations'] - r['start_iteration'] >= 4
               for r in runs if not r['diverged'])
    assert all(os.path.exists(r['snapshot']) for r in runs if not r['diverged'])
    # Each measurement keeps the losses its score averages (the tie test pairs them).
    assert all(r['score'] == pytest.approx(sum(r['losses']) / len(r['losses']))
               for r in runs if not r['diverged'])
    assert report['optimizer_seconds'] >= 1.5
    for key in ('groups', 'momentum', 'base_lr', 'seconds_per_iteration',
                'iterations_to_target', 'time_to_target_s'):
        assert key in report


def test_cct_optimize_refuses_a_cluster_file_without_simulate(digits, tmp_path, capsys):
    path = write_solver(digits, 'optray2', batch_size=16)
    clusters = os.path.join(os.path.dirname(__file__), '..', '..', 'examples', 'clusters')
    assert cli.main(['optimize', '--solver', path, '--cluster',
                     os.path.join(clusters, 'laptop.json'), '--budget', '2']) == 1
    assert 'give --simulate, or leave it out' in capsys.readouterr().err
    assert cli.main(['optimize', '--solver', path, '--cluster',
                     os.path.join(clusters, 'laptop.json'), '--simulate', '--workers', '2',
                     '--budget', '2']) == 1
    assert 'are for measuring on Ray' in capsys.readouterr().err
