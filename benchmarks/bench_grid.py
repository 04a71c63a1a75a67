"""Load: grids of many tiny configs run to completion with flat memory and no leaks.

Each size runs in a fresh subprocess (its own ephemeral Prefect server) on the real CoinCodex file
(or the synthetic sample when ../shared is absent): `train_grid` in local dispatch with
1-epoch, hidden-2 configs, so the cost measured is the orchestration, storage and bookkeeping per
config rather than the arithmetic. Reports wall time, peak RSS of the grid process, and the open
file descriptors and child processes left when the flow returns.

    python benchmarks/bench_grid.py [--sizes 50,200,500] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real" / "eth_daily_coincodex_2015-08-08_2025-08-08.csv"
CELLS, NORMS, FEATURES = ["rnn", "lstm", "gru"], ["none", "batch", "layer"], ["close", "all"]

_CHILD = r"""
import json, os, resource, sys, time
from pathlib import Path
from seqlab.runners.ingest import IngestOptions, ingest_source
from seqlab.sample import write_sample_csv
from seqlab.flows.train import train_grid

work, source, grid = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
symbol = "ETH" if source else "ETH-SYNTHETIC"
source = source or str(write_sample_csv(work / "sample"))
ingest_source(source, IngestOptions(symbol=symbol, warehouse=work / "w.duckdb", docs_dir=work / "docs"))
started = time.perf_counter()
result = train_grid(symbol=symbol, warehouse=str(work / "w.duckdb"), output_dir=str(work / "out"),
                    epochs=1, hidden=2, lookback=5, batch_size=256, **grid)
wall = time.perf_counter() - started
children = [p for p in Path("/proc").iterdir() if p.name.isdigit()
            and (p / "stat").exists() and (p / "stat").read_text().split()[3] == str(os.getpid())]
print(json.dumps({"configs": result["trained"] + result["reused"], "trained": result["trained"],
                  "failed": result["failed"], "seconds": round(wall, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "open_fds": len(os.listdir("/proc/self/fd")), "child_processes": len(children)}))
"""


def run_size(configs: int) -> dict:
    per_seed = len(CELLS) * len(NORMS) * len(FEATURES)
    seeds = max(1, round(configs / per_seed))
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "PREFECT_HOME": str(Path(work) / "prefect"),
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
               "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
        source = str(REAL) if REAL.exists() else ""
        grid = {"cells": CELLS, "depths": [1], "norms": NORMS, "feature_sets": FEATURES,
                "seeds": list(range(seeds))}
        done = subprocess.run([sys.executable, "-c", _CHILD, work, source, json.dumps(grid)], env=env,
                              capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-3000:])
        row = json.loads(done.stdout.strip().splitlines()[-1])
    row["seconds_per_config"] = round(row["seconds"] / max(row["configs"], 1), 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200,500")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    print(f"{'configs':>8} {'seconds':>8} {'s/config':>9} {'peak MB':>8} {'fds':>5} {'children':>8} {'failed':>6}")
    for size in (int(s) for s in args.sizes.split(",")):
        row = run_size(size)
        rows.append(row)
        print(f"{row['configs']:>8} {row['seconds']:>8} {row['seconds_per_config']:>9} "
              f"{row['peak_rss_mb']:>8} {row['open_fds']:>5} {row['child_processes']:>8} {row['failed']:>6}",
              flush=True)
    payload = {"sizes": rows}
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2))
    print(json.dumps(payload))


if __name__ == "__main__":
    main()
