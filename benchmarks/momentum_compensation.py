"""Where --momentum-mode auto collapses the quadratic's per-update loss curves of G = 2, 4, 8 onto
G = 1's, and where it does not: cct.distributed.momentum.compensation_spread (mean |log L_G -
log L_1| over 300 updates, 500 runs per curve, explicit momentum 0.9 or compensated) over a range
of rates and seeds.

    python benchmarks/momentum_compensation.py [--rates 0.005,0.01,...] [--seeds 0,1,2]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from cct.distributed.momentum import compensation_spread  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rates', default='0.005,0.01,0.02,0.03,0.05,0.08')
    parser.add_argument('--seeds', default='0,1,2')
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(',')]
    print('| rate | explicit 0.9: spread G = 2, 4, 8 | auto: spread G = 2, 4, 8 | '
          'largest auto / largest explicit (over seeds) |')
    print('|---:|---|---|---:|')
    for rate in [float(r) for r in args.rates.split(',')]:
        runs = {mode: [compensation_spread(mode=mode, base_lr=rate, seed=s) for s in seeds]
                for mode in ('explicit', 'auto')}
        mean = {mode: [float(np.mean([r[g] for r in runs[mode]])) for g in (2, 4, 8)]
                for mode in runs}
        ratios = [max(a.values()) / max(e.values()) for a, e in zip(runs['auto'],
                                                                      runs['explicit'])]
        print('| %g | %s | %s | %.2f to %.2f |' % (
            rate, ', '.join('%.2f' % v for v in mean['explicit']),
            ', '.join('%.2f' % v for v in mean['auto']), min(ratios), max(ratios)), flush=True)


if __name__ == '__main__':
    main()
