"""Omnivore's optimizer (cct.distributed.optimizer) on a synthetic problem with a fake clock whose
best configuration is known, its resumability, and ``cct optimize --simulate --json`` on the
digits."""
import json
import os

import pytest

from cct import cli
from cct import runtime
from cct.errors import CctError
from cct.distributed.optimizer import Optimizer, signed_rank_tail, tie

from grouped_helpers import write_solver

CLUSTERS = os.path.join(os.path.dirname(__file__), '..', '..', 'examples', 'clusters')


@pytest.fixture(autouse=True)
def _single_process_rank():
    yield
    runtime.set_solver_count(1)
    runtime.set_solver_rank(0)


class FakeProblem:
    """Time to accuracy = seconds per update × updates to converge, both known in closed form.

    Hardware: 1 / G seconds per update up to 8 groups; 16 groups are only 5 % faster than 8 (the
    server saturates). Statistics: the updates grow with the distance of the total momentum
    (explicit + 1 - 1/G) from 0.95 and with staleness (1 + 0.1 G²); rate 0.01 is best; a total
    momentum of 1.2 or more diverges, and so does rate 0.1 above 0.95. The best configuration is
    4 groups, momentum 0.3, rate 0.01 (score 71.5; see ``best_by_exhaustive_search``).
    """

    rate_factor = {0.1: 2.0, 0.01: 1.0, 0.001: 3.0, 0.0001: 10.0}

    def __init__(self, folder, fail_after=None):
        self.folder, self.fail_after, self.calls = folder, fail_after, []

    @staticmethod
    def seconds_per_update(groups):
        return 1.0 / min(groups, 8) / (1.05 if groups > 8 else 1.0)

    @classmethod
    def score(cls, groups, momentum, rate):
        total = momentum + 1 - 1 / groups
        if total >= 1.2 or (rate >= 0.1 and total > 0.95):
            return None
        updates = 100 * (1 + 10 * (total - 0.95) ** 2) * cls.rate_factor[round(rate, 6)] * \
            (1 + 0.1 * groups ** 2)
        return cls.seconds_per_update(groups) * updates

    def evaluate(self, groups, momentum, base_lr, seconds, start):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt('killed')
        self.calls.append((groups, momentum, base_lr, start))
        score = self.score(groups, momentum, base_lr)
        snapshot = os.path.join(self.folder, 'ckpt%d' % len(self.calls))
        open(snapshot, 'w').close()
        return {'seconds_per_iteration': self.seconds_per_update(groups),
                'score': float('inf') if score is None else score, 'diverged': score is None,
                'seconds': seconds, 'start_iteration': 0, 'iterations': 10,
                'iterations_to_target': None, 'time_to_target_s': None,
                'snapshot': None if score is None else snapshot}


def best_by_exhaustive_search():
    grid = [(g, m, r) for g in (1, 2, 4, 8, 16) for m in (0.0, 0.3, 0.6, 0.9)
            for r in (0.1, 0.01, 0.001, 0.0001)]
    scored = [(FakeProblem.score(*point), point) for point in grid]
    return min((s, p) for s, p in scored if s is not None)[1]


def optimizer(folder, problem, measurements=None):
    return Optimizer(problem, [1, 2, 4, 8, 16], budget_seconds=100, phase_seconds=1,
                     epoch_seconds=10, measurements=measurements)


def test_the_optimizer_picks_the_known_best_configuration(tmp_path, cct_log):
    assert best_by_exhaustive_search() == (4, 0.3, 0.01)
    report = optimizer(tmp_path, FakeProblem(str(tmp_path))).run()
    assert (report['groups'], report['momentum'], report['base_lr']) == (4, 0.3, 0.01)
    decisions = [d['decision'] for d in report['decisions']]
    # The cold start stops at 16 groups (5 % faster than 8 is not worth it), the steady state
    # starts at the fastest count, 8, whose best explicit momentum is 0: halve to 4.
    assert any(d.startswith('stop the cold start: 16 groups') for d in decisions)
    assert 'steady state starts with the fastest group count per update' in decisions
    halving = [d for d in report['decisions'] if d['decision'].startswith('best explicit')]
    assert halving and halving[0]['evidence']['groups'] == 8 and \
        halving[0]['evidence']['to'] == 4
    assert 'Optimizer decision: best explicit momentum is 0' in cct_log()
    # Pruning: after one group's best (0.9, 0.01), two groups never try rate 0.1, nor rate
    # 0.001 with momentum below 0.9; a diverged point prunes the larger ones.
    two = [(p['momentum'], p['base_lr']) for p in report['tried']
           if p['groups'] == 2 and p['phase'] == 'cold']
    assert two and all(r <= 0.01 for _, r in two)
    assert all(m == 0.9 for m, r in two if r == 0.001)
    assert report['optimizer_seconds'] >= 100 - 10


def test_trials_start_from_the_latest_checkpoint_and_training_goes_on_from_the_winner(tmp_path):
    problem = FakeProblem(str(tmp_path))
    report = optimizer(tmp_path, problem).run()
    tried = report['tried']
    assert tried[0]['start'] is None and tried[0]['phase'] == 'cold'
    # The points run in blocks from one start (a grid's points compare); each block starts
    # from the state of the last point kept before it (a grid's winner or an epoch).
    blocks = []
    for point in tried:
        if not blocks or blocks[-1][-1]['start'] != point['start']:
            blocks.append([])
        blocks[-1].append(point)
    assert len(blocks) > 5
    for before, block in zip(blocks, blocks[1:]):
        kept = [p for p in before if p['kept']]
        assert len(kept) == 1 and block[0]['start'] == kept[0]['snapshot']
    winners = [p for p in tried if p['kept'] and p['phase'] != 'epoch']
    assert [(p['groups'], p['momentum']) for p in winners][:4] == \
        [(1, 0.9), (2, 0.3), (4, 0.3), (8, 0.0)]
    assert all(p['kept'] for p in tried if p['phase'] == 'epoch')


class HotProblem(FakeProblem):
    """The fake problem where one group's rate 0.1 scores best in its short trial but leaves a
    state about to blow up: every point resumed from it scores 10 times worse."""

    def evaluate(self, groups, momentum, base_lr, seconds, start):
        record = super().evaluate(groups, momentum, base_lr, seconds, start)
        if groups == 1 and base_lr == 0.1:
            record.update(score=50.0, diverged=False)
            os.rename(record['snapshot'], record['snapshot'] + '_hot')
            record['snapshot'] += '_hot'
        elif start and start.endswith('_hot') and not record['diverged']:
            record['score'] *= 10
        return record


def test_a_state_whose_loss_blows_up_is_left_for_the_one_before(tmp_path, cct_log):
    report = optimizer(tmp_path, HotProblem(str(tmp_path))).run()
    tried = report['tried']
    two = [p for p in tried if p['groups'] == 2 and p['phase'] == 'cold']
    assert two and all(p['start'].endswith('_hot') for p in two)
    assert 'the loss blew up from the checkpoint: go back to the state before it' in cct_log()
    # Four groups search from the state before the hot one (the initial model).
    four = [p for p in tried if p['groups'] == 4 and p['phase'] == 'cold']
    assert four and all(p['start'] is None for p in four)
    assert not any(p['kept'] for p in two)


class RateDropProblem(FakeProblem):
    """The fake problem where 16 groups are twice as fast per update as 8 but diverge at rate
    0.01, so their best rate is 0.001: a tenfold smaller step for twice the updates."""

    @staticmethod
    def seconds_per_update(groups):
        return 1.0 / groups

    @classmethod
    def score(cls, groups, momentum, rate):
        if groups == 16 and rate >= 0.01:
            return None
        return super().score(groups, momentum, rate)


def test_the_steady_state_steps_down_from_a_count_that_needed_a_smaller_rate(tmp_path):
    report = optimizer(tmp_path, RateDropProblem(str(tmp_path))).run()
    steps = [d for d in report['decisions']
             if d['decision'].startswith('16 groups needed a smaller rate')]
    assert steps and steps[0]['evidence']['to'] == 8 and steps[0]['evidence']['base_lr'] == 0.001
    # The steady state trains at 8 groups or fewer (halving on from 8 as the 0-momentum rule
    # says) and finds the known best.
    epochs = [p for p in report['tried'] if p['phase'] == 'epoch']
    assert epochs and all(p['groups'] <= 8 for p in epochs)
    assert (report['groups'], report['momentum'], report['base_lr']) == (4, 0.3, 0.01)


def test_a_step_down_weighs_the_larger_rate_against_the_slower_updates(tmp_path):
    opt = optimizer(tmp_path, FakeProblem(str(tmp_path)))
    opt.hardware = {1: 1.0, 2: 0.4, 4: 0.25, 8: 0.05}

    def winners(*rates):
        return {g: {'base_lr': r} for g, r in zip((1, 2, 4, 8), rates)}
    # 4 groups: 5 times slower per update than 8, a 10 times larger rate.
    assert opt._step_down(winners(0.1, 0.01, 0.01, 0.001), 8) == 4
    # The largest smaller count with a larger rate is the one weighed (2: 8 times slower).
    assert opt._step_down(winners(0.1, 0.01, 0.001, 0.001), 8) == 2
    # One group alone kept rate 0.1, but it is 20 times slower per update: keep 8.
    assert opt._step_down(winners(0.1, 0.01, 0.01, 0.01), 8) == 8
    assert opt._step_down(winners(0.1, 0.01, 0.01, 0.01), 1) == 1
    assert 'too slow per update to make up for it: keep 8' in opt.decisions[-1]['decision']


def _point(rate, momentum, losses):
    return {'base_lr': rate, 'momentum': momentum, 'diverged': False,
            'score': sum(losses) / len(losses), 'losses': losses}


def test_a_more_aggressive_point_whose_losses_are_not_significantly_worse_wins():
    # Paired with the cautious point's 12 losses, the bolder one's are worse in 6 and better in
    # 6, by a little more in the pairs it is worse: its mean is 1.3 % higher (Omnivore's 1 %
    # buffer keeps the cautious point), but a one-sided signed-rank test gives p = 0.15.
    cautious = [0.50 + 0.01 * (i % 3) for i in range(12)]
    steps = [0.03, 0.031, 0.032, 0.033, 0.02, 0.021, -0.01, -0.015, -0.022, -0.025, -0.005,
             -0.012]
    bolder = [c + d for c, d in zip(cautious, steps)]
    points = [_point(0.01, 0.3, cautious), _point(0.01, 0.6, bolder)]
    assert tie(points[1], points[0])
    assert Optimizer.best(points, buffer=1.01)['momentum'] == 0.6
    # Worse in 8 pairs of 12 by 0.02, better in 4 by 0.01: p = 0.01, significantly worse, and
    # the lowest score stays (its mean is 2 % higher; a sign test, p = 0.19, would call it a tie).
    worse = [c + (0.02 if i < 8 else -0.01) for i, c in enumerate(cautious)]
    points[1] = _point(0.01, 0.6, worse)
    assert not tie(points[1], points[0])
    assert Optimizer.best(points)['momentum'] == 0.3
    # A less aggressive point never displaces the lowest score, tie or not.
    points = [_point(0.01, 0.3, cautious), _point(0.001, 0.6, bolder)]
    assert Optimizer.best(points)['base_lr'] == 0.01


def test_a_trial_whose_loss_blew_up_is_no_tie():
    # The digits' steady state at 16 groups (jitter seed 14): momentum 0.6 at rate 0.01 against
    # the lowest, 0.6 at 0.001. Worse in 8 pairs of 10, by up to 2.1: a sign test's p is 0.055
    # (a tie), the signed-rank test's 0.01.
    blew_up = [0.43, 1.78, 1.52, 2.08, 0.88, 0.69, 2.37, 0.33, 1.59, 2.14]
    lowest = [0.69, 0.29, 0.28, 0.29, 0.42, 0.6, 0.26, 0.6, 0.36, 0.27]
    points = [_point(0.001, 0.6, lowest), _point(0.01, 0.6, blew_up)]
    assert not tie(points[1], points[0])
    assert Optimizer.best(points, buffer=1.01)['base_lr'] == 0.001


def test_a_score_that_more_than_doubled_is_no_tie_however_few_the_pairs():
    # The digits' cold start at 2 groups with 5-update trials (jitter seed 1): rate 0.1 with
    # momentum 0.9 blew up (a mean of 25 against 1.26), yet one pair of 5 in its favour leaves
    # the signed-rank test no evidence (p = 0.06).
    lowest = _point(0.01, 0.9, [1.95, 0.89, 1.06, 1.77, 0.62])
    blew_up = _point(0.1, 0.9, [5.88, 0.76, 4.19, 35.0, 80.51])
    assert tie(blew_up, lowest)
    assert Optimizer.best([lowest, blew_up]) is lowest


def test_the_signed_rank_tail_is_exact():
    # 5 pairs all worse: 1/32, the fewest pairs that can reject at 5 %; 10 pairs whose three
    # smallest differences favour the point: P(W <= 6) = 14/1024 (scipy.stats.wilcoxon, exact).
    assert signed_rank_tail(5, 0) == 1 / 32
    assert signed_rank_tail(10, 6) == 14 / 1024
    assert signed_rank_tail(4, 10) == 1.0


def test_a_tie_needs_five_pairs_that_differ():
    # 4 pairs all worse cannot be told from chance (1/16), so they make no tie either way; 5
    # mixed pairs can (a tie), and an equal pair is dropped.
    mixed = [0.6, 0.4, 0.6, 0.4, 0.45]
    assert tie(_point(0.01, 0.6, mixed), _point(0.01, 0.3, [0.5] * 5))
    assert not tie(_point(0.01, 0.6, mixed[:4]), _point(0.01, 0.3, [0.5] * 4))
    assert not tie(_point(0.01, 0.6, mixed[:4] + [0.5]), _point(0.01, 0.3, [0.5] * 5))
    assert not tie(_point(0.01, 0.6, [0.6] * 5), _point(0.01, 0.3, [0.5] * 5))
    # Without losses (an evaluator that reports none), the buffer alone.
    plain = [{'base_lr': 0.01, 'momentum': 0.3, 'diverged': False, 'score': 1.0},
             {'base_lr': 0.01, 'momentum': 0.6, 'diverged': False, 'score': 1.005}]
    assert Optimizer.best(plain, buffer=1.01)['momentum'] == 0.6
    assert Optimizer.best(plain)['momentum'] == 0.3


class HotEpochProblem(FakeProblem):
    """One group's rate 0.1 wins its short trial, but an epoch at 0.1 diverges."""

    def evaluate(self, groups, momentum, base_lr, seconds, start):
        record = super().evaluate(groups, momentum, base_lr, seconds, start)
        if base_lr == 0.1:
            if seconds < 10:
                record.update(score=1.0)
            else:
                record.update(score=float('inf'), diverged=True, snapshot=None)
        return record


def test_an_epoch_that_diverges_leaves_a_state_its_rate_made(tmp_path, cct_log):
    report = Optimizer(HotEpochProblem(str(tmp_path)), [1], budget_seconds=30, phase_seconds=1,
                       epoch_seconds=10).run()
    epochs = [p for p in report['tried'] if p['phase'] == 'epoch']
    hot = next(p for p in report['tried'] if p['phase'] == 'cold' and p['base_lr'] == 0.1)
    assert hot['kept'] and epochs[0]['start'] == hot['snapshot'] and epochs[0]['diverged']
    # Retried at a tenth of the rate from the state before the trial at 0.1 (the initial one).
    assert epochs[1]['base_lr'] == 0.01 and epochs[1]['start'] is None
    assert 'from the state before the checkpoint (made at this rate)' in cct_log()


def test_the_steady_state_prunes_dominated_points(tmp_path):
    """After an epoch of (rate r, momentum m) the next search skips rate r with momentum above m
    and rate r/10 with momentum below m; after halving the groups the reference momentum is
    0.6."""
    report = optimizer(tmp_path, FakeProblem(str(tmp_path))).run()
    tried = report['tried']
    halved = [i for i, p in enumerate(tried) if p['phase'] == 'steady']
    first_epoch = next(i for i, p in enumerate(tried) if p['phase'] == 'epoch')
    # The search after halving 8 -> 4 groups (rate 0.01, reference momentum 0.6).
    after_halving = [(p['momentum'], p['base_lr']) for p in tried[halved[0]:first_epoch]]
    # (Momentum 0.6 at 4 groups diverges here, which prunes 0.9 and rate 0.01 with 0.6.)
    assert sorted(after_halving) == [(0.0, 0.01), (0.3, 0.01), (0.6, 0.001)]
    # Every later search at 4 groups after an epoch of (0.01, 0.3).
    later = [(p['momentum'], p['base_lr']) for p in tried[first_epoch:]
             if p['phase'] == 'steady']
    assert later and set(later) == {(0.0, 0.01), (0.3, 0.01), (0.3, 0.001), (0.6, 0.001)}


def test_a_killed_optimizer_resumes_from_its_measurements(tmp_path):
    measurements = str(tmp_path / 'm.jsonl')
    straight = optimizer(tmp_path, FakeProblem(str(tmp_path))).run()
    first = FakeProblem(str(tmp_path), fail_after=12)
    with pytest.raises(KeyboardInterrupt):
        optimizer(tmp_path, first, measurements).run()
    second = FakeProblem(str(tmp_path))
    resumed = optimizer(tmp_path, second, measurements).run()
    assert resumed['reused_measurements'] == 12
    assert len(second.calls) == len(straight['tried']) - 12
    keys = ('groups', 'momentum', 'base_lr', 'phase')
    assert [[p[k] for k in keys] for p in resumed['tried']] == \
        [[p[k] for k in keys] for p in straight['tried']]
    assert (resumed['groups'], resumed['momentum']) == (straight['groups'], straight['momentum'])
    # Measurements of an evaluator with other settings (seed, trial length) are not reused.
    other = FakeProblem(str(tmp_path))
    other.settings = [1, 3, 1]
    again = optimizer(tmp_path, other, measurements).run()
    assert again['reused_measurements'] == 0 and len(other.calls) == len(straight['tried'])
    with open(measurements, 'a') as f:
        f.write('not json\n')
    with pytest.raises(CctError, match=r'm.jsonl:\d+: not a measurement line'):
        optimizer(tmp_path, second, measurements)


def test_cct_optimize_simulates_the_digits_and_prints_json(digits, tmp_path, capsys):
    path = write_solver(digits, 'opt', batch_size=16, max_iter=400, test_interval=20,
                        display=0)
    workdir = str(tmp_path / 'work')
    arguments = ['optimize', '--solver', path, '--cluster',
                 os.path.join(CLUSTERS, 'laptop.json'), '--simulate', '--budget', '3',
                 '--phase-seconds', '0.15', '--epoch-seconds', '1', '--target-accuracy',
                 '0.8', '--workdir', workdir, '--json']
    plot = tmp_path / 'optimizer.png'
    assert cli.main(arguments + ['--plot', str(plot)]) == 0
    assert plot.stat().st_size > 1000
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ('groups', 'momentum', 'base_lr', 'seconds_per_iteration',
                'iterations_to_target', 'time_to_target_s', 'tried'):
        assert key in report
    assert report['groups'] in (1, 2) and report['tried']
    # The laptop reaches 0.8 within the budget; the search's share of that time is counted.
    assert report['time_to_target_s'] is not None
    assert 0 < report['search_seconds_to_target'] < report['time_to_target_s']
    assert set(report['tried'][0]) >= {'groups', 'momentum', 'base_lr', 'seconds_per_iteration',
                                       'iterations_to_target', 'time_to_target_s'}
    # Restarted, it measures nothing again.
    assert cli.main(arguments) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again['reused_measurements'] == len(again['tried']) == len(report['tried'])
