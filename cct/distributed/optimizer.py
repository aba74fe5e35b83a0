"""Omnivore's optimizer (omnivore.py; ../shared/reference/cct_omnivore.md §2b): choose the number
of compute groups, the explicit momentum and the learning rate that minimise time to accuracy.

Every grid point is a short trial (``phase_seconds``, a small fraction of an epoch) resumed from
the latest checkpoint, and training goes on from the best trial's state, so the search's progress
is kept rather than thrown away (Omnivore's steady state; its cold start trained every point from
scratch, which on a problem that trains in seconds costs more than the training).

Cold start, from the fewest groups (largest groups, least asynchrony) to the most: one group tries
momentum 0.9 with the rates {0.1, 0.01, 0.001, 0.0001}; every further group count tries momentum
{0, 0.3, 0.6, 0.9} with the rates {best, best/10} of the previous count, with Omnivore's pruning
(a diverged point prunes every point with a rate and momentum at least as large; more staleness
never needs a larger rate, nor the same rate with more momentum, nor less of both: dominated
points) and an early exit when a count is not at least 10 % faster per update than the previous
one. Score = a trial's mean loss over its last updates (see SimulationResult.score); the points of
one grid start from the same checkpoint and, on the simulator, see the same batches and the same
compute-time draws (common random numbers), so their scores compare. The winner is the lowest
score or, as Omnivore prefers, a more aggressive point that ties with it: here also one whose
losses a signed-rank test does not find worse (Omnivore's tie is a fixed 1 % in the steady
state; short trials decide by differences of 1-2 %, within their noise, in favour of cautious
points). Each count's winner becomes the checkpoint the next count searches from. Then the
fastest count per update (a larger count replaces the current choice only if 10 % faster) trains
its winner for an epoch (``epoch_seconds``) from the latest checkpoint, unless its winner needed
a smaller rate than a smaller count's (``_step_down``: Omnivore's choice by hardware efficiency
alone ignores that).
A trial lasts at least one update per group on a model it updated (simulator.trial_length);
short trials still favour cautious points (greedy tuning's short-horizon bias), so the choice
depends on their length (README's Omnivore section).

Steady state, epoch by epoch from the latest checkpoint: grid momentum {0, 0.3, 0.6, 0.9} (and
-0.3 with ``negative_momentum``, which the paper proposes) times the rates {last, last/10}, pruned
of the points the last choice dominates, as in the cold start; when the best explicit momentum is
0, asynchrony already gives too much momentum: halve the number of groups and search again (the
pruning's reference momentum 0.6, which puts that 0 in the middle of the next range); otherwise
train the chosen point for an epoch from the best trial's state. It stops at the budget or as soon
as a run reaches the target accuracy.

Every measurement is appended to a JSON-lines file and reused when the optimizer is restarted
(the path it takes is a function of the measurements, so a restart replays it up to where it was
killed); every decision is logged with its evidence.
"""
import json
import math
import os

from cct.errors import CctError
from cct.log import logger

COLD_RATES = (0.1, 0.01, 0.001, 0.0001)
MOMENTA = (0.0, 0.3, 0.6, 0.9)
#: A group count must be this much faster per update than the previous one to be worth it.
TIME_THRESHOLD = 0.10
#: A best trial scoring this many times the run that made its checkpoint (the loss blew up,
#: not the noise of a few batches nor more staleness) sends training back.
REGRESSION = 2.0
#: A more aggressive point ties with the lowest score unless a signed-rank test over at least
#: TIE_PAIRS paired losses finds it worse at this level (Optimizer.best); 5 pairs are the fewest
#: with which the test can reject at 5 % (all worse: 1/32).
TIE_PAIRS = 5
TIE_LEVEL = 0.05


class Optimizer:
    """Omnivore's optimizer over an evaluator.

    Args:
        evaluator: ``evaluate(groups, momentum, base_lr, seconds, start)`` returning a dict with
            ``seconds_per_iteration``, ``score``, ``diverged``, ``seconds`` (simulated time used),
            ``start_iteration``, ``iterations``, ``iterations_to_target``, ``time_to_target_s``,
            ``snapshot`` (a checkpoint to resume from, or None) and optionally ``losses`` (the
            scored losses in the order applied, for the tie test).
        group_counts: the numbers of groups to consider, ascending (e.g. 1, 2, 4, ... N).
        budget_seconds: the optimizer's total time (search and training).
        phase_seconds: time per grid point.
        epoch_seconds: time per training epoch.
        measurements: the JSON-lines file of measurements (resumability), or None.
        negative_momentum: also try momentum -0.3 in the steady state.
    """

    def __init__(self, evaluator, group_counts, *, budget_seconds, phase_seconds, epoch_seconds,
                 measurements=None, negative_momentum=False):
        if not group_counts:
            raise CctError('the optimizer needs at least one group count')
        if min(phase_seconds, epoch_seconds, budget_seconds) <= 0:
            raise CctError('the budget, phase and epoch times must be positive')
        self.evaluator = evaluator
        self.group_counts = sorted(group_counts)
        self.budget, self.phase, self.epoch = budget_seconds, phase_seconds, epoch_seconds
        self.negative_momentum = negative_momentum
        self.path = measurements
        self.cache = {}
        self.reused = 0
        if measurements and os.path.exists(measurements):
            with open(measurements) as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                        self.cache[record['key']] = record
                    except (ValueError, KeyError):
                        raise CctError('%s:%d: not a measurement line of cct optimize'
                                       % (measurements, number)) from None
        self.tried = []
        self.decisions = []
        self.clock = 0.0
        self.reached = None
        self.chosen = None
        #: The state the next trial or epoch starts from (None: the initial model), and the
        #: ones before it.
        self.checkpoint = None
        self._history = []
        #: checkpoint -> the run that made it (its score and rate judge what comes after).
        self._made = {}
        self.hardware = {}
        self._hardware_sums = {}

    # ------------------------------------------------------------------ bookkeeping
    def decide(self, text, **evidence):
        """Log a decision with its evidence and keep it for the report."""
        self.decisions.append({'decision': text, 'evidence': evidence})
        logger.info('Optimizer decision: %s (%s)', text,
                    ', '.join('%s=%s' % (k, _short(v)) for k, v in evidence.items()))

    def measure(self, phase, groups, momentum, base_lr, seconds, start):
        """One run, from the cache when this exact run was measured before."""
        # An evaluator's ``settings`` (seed, trial length) are part of a measurement's identity.
        key = json.dumps([phase, groups, round(momentum, 6), base_lr, seconds,
                          start and os.path.basename(start)] +
                         ([self.evaluator.settings] if getattr(self.evaluator, 'settings', None)
                          else []))
        record = self.cache.get(key)
        if record is not None and (record.get('snapshot') is None or
                                   os.path.exists(record['snapshot'])):
            self.reused += 1
        else:
            result = self.evaluator.evaluate(groups, momentum, base_lr, seconds, start)
            record = dict(result, key=key, phase=phase, groups=groups, momentum=momentum,
                          base_lr=base_lr, start=start)
            if self.path:
                with open(self.path, 'a') as f:
                    f.write(json.dumps(record) + '\n')
            self.cache[key] = record
        record = dict(record, clock_start=self.clock)
        if record['iterations_to_target'] is not None and self.reached is None:
            self.reached = {'time_to_target_s': self.clock + record['time_to_target_s'],
                            'iterations_to_target': record['start_iteration'] +
                            record['iterations_to_target'],
                            'run': record}
            self.decide('target accuracy reached', groups=groups, momentum=momentum,
                        base_lr=base_lr, phase=phase, at_seconds=self.reached['time_to_target_s'])
        self.clock += record['seconds']
        self.tried.append(record)
        self._measure_hardware(groups, record)
        return record

    def _measure_hardware(self, groups, record):
        """HE of ``groups``: seconds per update pooled over every run at that count that did
        not diverge (weighted by its updates). Omnivore takes the first run's; a short trial's
        alone is noisy (a few updates of exponential compute times)."""
        updates = record['iterations'] - record['start_iteration']
        if record['diverged'] or not record['seconds_per_iteration'] or updates <= 0:
            return
        seconds, count = self._hardware_sums.get(groups, (0.0, 0))
        seconds, count = seconds + record['seconds_per_iteration'] * updates, count + updates
        self._hardware_sums[groups] = seconds, count
        self.hardware[groups] = seconds / count

    def out_of_time(self):
        return self.reached is not None or self.clock >= self.budget

    # ------------------------------------------------------------------ cold start
    def grid(self, phase, groups, momenta, rates, start, previous=None):
        """Omnivore's grid_search_parameters: rates ascending, then momenta ascending, with its
        pruning. Returns the measured points (dicts)."""
        points, diverged = [], []
        for rate in sorted(rates):
            for momentum in sorted(momenta):
                if any(rate >= r and momentum >= m for r, m in diverged):
                    continue
                if previous is not None:
                    p_rate, p_momentum = previous
                    if rate > p_rate or (rate == p_rate and momentum > p_momentum) or \
                            (rate < p_rate and momentum < p_momentum):
                        continue
                if self.out_of_time():
                    return points
                record = self.measure(phase, groups, momentum, rate, self.phase, start)
                points.append(record)
                if record['diverged']:
                    diverged.append((rate, momentum))
                if len(points) == 1 and phase == 'cold' and not self._pays(groups):
                    return points
        return points

    def _pays(self, groups):
        """Whether ``groups`` is at least TIME_THRESHOLD faster per update than the count before
        it in the cold start (Omnivore's early exit, 'FC saturation')."""
        index = self.group_counts.index(groups)
        if index == 0:
            return True
        before = self.group_counts[index - 1]
        now, then = self.hardware.get(groups), self.hardware.get(before)
        if now is None or then is None:
            return True
        return now <= then / (1 + TIME_THRESHOLD)

    @staticmethod
    def best(points, buffer=1.0):
        """The lowest score; then the most aggressive point (a larger rate, or the same rate
        with more momentum) whose score is within ``buffer`` times it, or whose losses are not
        significantly worse than its (``tie``) unless its score is more than REGRESSION times it
        (the loss blew up; a test over a few pairs cannot tell): Omnivore prefers the more
        aggressive point, and short trials' scores favour cautious ones by differences within
        their noise."""
        alive = [p for p in points if not p['diverged'] and math.isfinite(p['score'])]
        if not alive:
            return None
        lowest = top = min(alive, key=lambda p: p['score'])
        for p in alive:
            if (p['base_lr'], p['momentum']) > (top['base_lr'], top['momentum']) and \
                    (p['score'] <= buffer * lowest['score'] or
                     (p['score'] <= REGRESSION * lowest['score'] and tie(p, lowest))):
                top = p
        return top

    def cold_start(self):
        """Omnivore's cold start; every grid starts from the latest checkpoint (None: the
        initial model) and its winner's state becomes the next one. Returns {groups: winner}."""
        winners = {}
        previous = None
        for groups in self.group_counts:
            if self.out_of_time():
                break
            if previous is None:
                points = self.grid('cold', groups, (0.9,), COLD_RATES, self.checkpoint)
            else:
                rate = previous['base_lr']
                points = self.grid('cold', groups, MOMENTA, (rate, rate / 10), self.checkpoint,
                                   (previous['base_lr'], previous['momentum']))
            if previous is not None and not self._pays(groups):
                before = self.group_counts[self.group_counts.index(groups) - 1]
                self.decide('stop the cold start: %d groups are not %d%% faster per update than '
                            '%d' % (groups, TIME_THRESHOLD * 100, before), groups=groups,
                            seconds_per_iteration=self.hardware.get(groups),
                            previous_seconds_per_iteration=self.hardware.get(before))
                break
            top = self.best(points)
            if top is None:
                self.decide('every point of %d groups diverged; stop the cold start' % groups,
                            groups=groups)
                break
            winners[groups] = top
            self.decide('cold start, %d groups: best momentum %g, rate %g; go on from its state'
                        % (groups, top['momentum'], top['base_lr']), score=top['score'],
                        points=len(points), seconds_per_iteration=self.hardware.get(groups))
            self._advance(top)
            previous = top
        return winners

    def _advance(self, record):
        """Training goes on from ``record``'s state (the search's progress is kept) unless the
        loss blew up from the checkpoint: its score more than REGRESSION times the
        score of the run that made the checkpoint (a short trial at a large rate can leave a
        state about to blow up, momentum and all; both scores are means of several losses, so
        the noise of one batch does not trigger it). Then training goes back to the state
        before that checkpoint. Returns whether it was kept."""
        if not record.get('snapshot'):
            return False
        made = self._made.get(self.checkpoint)
        if made is not None and record['score'] > REGRESSION * made['score']:
            self.decide('the loss blew up from the checkpoint: go back to the state before it',
                        groups=record['groups'], momentum=record['momentum'],
                        base_lr=record['base_lr'], score=record['score'],
                        checkpoint_score=made['score'])
            self._revert()
            return False
        self._history.append(self.checkpoint)
        self.checkpoint = record['snapshot']
        self._made[self.checkpoint] = record
        record['kept'] = True
        self.chosen = record
        return True

    def _revert(self):
        if self._history:
            self.checkpoint = self._history.pop()

    # ------------------------------------------------------------------ the whole run
    def run(self):
        """Cold start, then steady-state epochs until the budget or the target. Returns the
        report dict (``chosen``, ``tried``, ``decisions``, ``reached``)."""
        winners = self.cold_start()
        if self.out_of_time():
            return self.report()
        if not winners:
            raise CctError('the optimizer found no configuration that trains (every point '
                           'diverged or the budget was spent before one ran)')
        groups = self._fastest(winners)
        top = winners[groups]
        self.decide('steady state starts with the fastest group count per update', groups=groups,
                    seconds_per_iteration=self.hardware.get(groups), momentum=top['momentum'],
                    base_lr=top['base_lr'])
        groups = self._step_down(winners, groups)
        top = winners[groups]
        rate, reference = top['base_lr'], None
        momenta = ((-0.3,) if self.negative_momentum else ()) + MOMENTA
        while not self.out_of_time():
            if top is None:
                # Re-tune from the latest checkpoint (the cold start's grid at this count is
                # the first epoch's search).
                points = self.grid('steady', groups, momenta, (rate, rate / 10),
                                   self.checkpoint, reference)
                top = self.best(points, buffer=1.01)
                if top is None or self.out_of_time():
                    break
            if top['momentum'] == 0 and groups != self.group_counts[0]:
                smaller = self.group_counts[self.group_counts.index(groups) - 1]
                self.decide('best explicit momentum is 0: asynchrony gives too much '
                            'momentum; halve the groups', groups=groups, to=smaller,
                            base_lr=top['base_lr'], score=top['score'])
                # Omnivore's reference momentum 0.6 puts the 0 just chosen in the middle of the
                # next range.
                groups, rate, reference, top = smaller, top['base_lr'], (top['base_lr'], 0.6), None
                continue
            rate, momentum = top['base_lr'], top['momentum']
            if top['start'] == self.checkpoint:
                # A trial of this search (a cold-start winner's state is already the
                # checkpoint, or an ancestor of it: training goes on from the latest).
                self._advance(top)
            self.decide('train an epoch', groups=groups, momentum=momentum, base_lr=rate,
                        score=top['score'],
                        from_checkpoint=self.checkpoint and os.path.basename(self.checkpoint))
            run, rate = self.train_epoch(groups, momentum, rate)
            if not run['snapshot']:
                break
            reference, top = (rate, momentum), None
        return self.report()

    def train_epoch(self, groups, momentum, rate, retries=3):
        """Train an epoch from the latest checkpoint, which then moves to its end; a run that
        diverges (a short trial can hide it) is retried at a tenth of the rate. Returns
        ``(run, rate)``."""
        for _ in range(retries + 1):
            run = self.measure('epoch', groups, momentum, rate, self.epoch, self.checkpoint)
            self.chosen = run
            if not run['diverged'] or self.out_of_time():
                break
            # Too large a rate for an epoch. A state a trial left at that rate (or more) may be
            # about to blow up (the laptop's 2 groups, momentum 0.9, rate 0.1): go back to the
            # one before it. Other states are judged by the next search (_advance).
            made = self._made.get(self.checkpoint)
            back = made is not None and made['base_lr'] >= rate and bool(self._history)
            self.decide('the epoch diverged; train it again at a tenth of the rate' +
                        (', from the state before the checkpoint (made at this rate)'
                         if back else ''),
                        groups=groups, momentum=momentum, base_lr=rate, to=rate / 10)
            if back:
                self._revert()
            rate /= 10
        if not run['diverged']:
            self._advance(run)
        return run, rate

    def _step_down(self, winners, groups):
        """The steady state's first count: ``groups`` (the fastest per update), or the largest
        smaller count whose cold-start winner kept a larger rate, if the rate's gain beats its
        slowdown per update: a tenfold smaller rate is a tenfold smaller step (on the digits,
        32 groups are 1.5 times faster per update than 16 but stable only at rate 0.001)."""
        rate, seconds = winners[groups]['base_lr'], self.hardware.get(groups)
        index = self.group_counts.index(groups)
        for smaller in reversed(self.group_counts[:index]):
            if smaller not in winners or winners[smaller]['base_lr'] <= rate or \
                    not seconds or not self.hardware.get(smaller):
                continue
            gain = winners[smaller]['base_lr'] / rate
            slowdown = self.hardware[smaller] / seconds
            evidence = dict(groups=groups, base_lr=rate, to=smaller,
                            to_base_lr=winners[smaller]['base_lr'], seconds_per_iteration=seconds,
                            to_seconds_per_iteration=self.hardware[smaller])
            if slowdown < gain:
                self.decide('%d groups needed a smaller rate than %d: step down'
                            % (groups, smaller), **evidence)
                return smaller
            self.decide('%d groups needed a smaller rate than %d, which is too slow per update '
                        'to make up for it: keep %d' % (groups, smaller, groups), **evidence)
            return groups
        return groups

    def _fastest(self, among=None):
        """The group count fastest per update (of ``among``, default all measured); a larger
        count replaces the current choice only when it is TIME_THRESHOLD faster (Omnivore's
        steady-state start)."""
        choice = None
        for groups in self.group_counts:
            spi = self.hardware.get(groups)
            if spi is None or (among is not None and groups not in among):
                continue
            if choice is None or spi <= self.hardware[choice] / (1 + TIME_THRESHOLD):
                choice = groups
        return choice

    def report(self):
        chosen = (self.reached and self.reached['run']) or self.chosen or {}
        fields = ('groups', 'momentum', 'base_lr', 'seconds_per_iteration')
        result = {k: chosen.get(k) for k in fields}
        result['iterations_to_target'] = self.reached and self.reached['iterations_to_target']
        result['time_to_target_s'] = self.reached and self.reached['time_to_target_s']
        result['optimizer_seconds'] = self.clock
        # The search's share of the time to target: every trial run before the target, and
        # the part of it thrown away (the trials whose state training did not go on from).
        reached = self.reached and self.reached['run']
        before = self.tried[:self.tried.index(reached)] if reached else []
        last = reached['time_to_target_s'] if reached and reached['phase'] != 'epoch' else 0.0
        result['search_seconds_to_target'] = None if not reached else sum(
            p['seconds'] for p in before if p['phase'] != 'epoch') + last
        result['discarded_seconds_to_target'] = None if not reached else sum(
            p['seconds'] for p in before if not p.get('kept'))
        result['reused_measurements'] = self.reused
        result['tried'] = [{k: p.get(k) for k in fields + (
            'iterations_to_target', 'time_to_target_s', 'phase', 'score', 'diverged', 'start',
            'snapshot', 'kept')}
            for p in self.tried]
        result['decisions'] = self.decisions
        return result


def tie(point, lowest):
    """Whether ``point``'s scored losses are not significantly worse than ``lowest``'s: a
    one-sided Wilcoxon signed-rank test at TIE_LEVEL over the losses paired in the order they
    were applied (on the simulator the points of one grid see the same batches and compute-time
    draws, so the pairs share a batch), equal pairs dropped, with at least TIE_PAIRS pairs
    (fewer: no tie). The ranks weigh how much worse, which a sign test ignores (8 pairs of 10
    worse is no evidence to it, even when the loss blew up), and they keep a few huge
    differences from deciding, which a t-test's variance does not."""
    mine, theirs = point.get('losses') or [], lowest.get('losses') or []
    count = min(len(mine), len(theirs))
    pairs = zip(mine[-count:], theirs[-count:]) if count else ()
    differences = [a - b for a, b in pairs if a != b]
    if len(differences) < TIE_PAIRS:
        return False
    ranked = sorted(differences, key=abs)
    better = sum(rank for rank, d in enumerate(ranked, 1) if d < 0)
    return signed_rank_tail(len(ranked), better) >= TIE_LEVEL


def signed_rank_tail(n, statistic):
    """P(W <= statistic) for the Wilcoxon signed-rank sum W of n pairs under the null (each
    rank's sign a fair coin), exactly: the number of subsets of 1..n with each sum, over 2^n."""
    ways = [1] + [0] * (n * (n + 1) // 2)
    for rank in range(1, n + 1):
        for total in range(len(ways) - 1, rank - 1, -1):
            ways[total] += ways[total - rank]
    return sum(ways[:statistic + 1]) / 2 ** n


def _short(value):
    if isinstance(value, float):
        return '%.4g' % value
    return value
