"""Power of claim 3 ("cells alike when deep") at the reference study's shape, printed as JSON.

Grids simulated with the cells exactly alike (tests/report/simulated.py): 3 cells x 4
depths x 3 norms x 2 feature sets x 3 seeds = 216 runs, 100 epochs (so claims 4 and 5 are
tested and sit in the Holm family too), no other effect. Prints the share of grids in
which claim 3 is supported (its power) and in which it is contradicted.

    PYTHONPATH=. python benchmarks/bench_claim_power.py [--grids 60] [--config-sd 0.05]
"""

from __future__ import annotations

import argparse
import json
import time

from seqlab.report.claims import evaluate_claims
from tests.report.simulated import simulate_grid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grids", type=int, default=60)
    parser.add_argument("--config-sd", type=float, default=0.05)
    parser.add_argument("--seed-sd", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    started = time.perf_counter()
    verdicts = []
    for seed in range(args.grids):
        claims = evaluate_claims(*simulate_grid(
            {}, seed=7000 + seed, depths=(1, 2, 3, 4), seeds=3, config_sd=args.config_sd,
            seed_sd=args.seed_sd, epochs=args.epochs, test_days=120))
        verdicts.append(next(c for c in claims if c.number == 3).verdict.value)
    print(json.dumps({
        "grids": args.grids, "config_sd": args.config_sd, "seed_sd": args.seed_sd,
        "epochs": args.epochs, "claim_3_supported": verdicts.count("supported") / args.grids,
        "claim_3_contradicted": verdicts.count("contradicted") / args.grids,
        "verdicts": {v: verdicts.count(v) for v in sorted(set(verdicts))},
        "seconds": round(time.perf_counter() - started, 1),
    }))


if __name__ == "__main__":
    main()
