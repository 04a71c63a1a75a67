"""Latency of `seqlab run` as a newcomer meets it: the first line, the whole run, the rerun.

Runs the console command in a fresh folder (its own warehouse and Prefect home) on the real
CoinCodex file (the synthetic sample when ../shared is absent) with a small grid: first a
fresh run (it trains and starts an ephemeral Prefect), then the same command again (every
config reused: no training, no Prefect). Prints one JSON object: seconds to the first line of
output, to the end of each run, and each run's last lines.

    python benchmarks/bench_rerun.py [--preset tiny] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real" / "eth_daily_coincodex_2015-08-08_2025-08-08.csv"


def _timed_run(command: list[str], cwd: Path, env: dict) -> dict:
    """Seconds to the first output line and to the exit, with the run's last lines."""
    started = time.monotonic()
    child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    first, lines = None, []
    for line in child.stdout:
        first = first if first is not None else time.monotonic() - started
        lines.append(line.rstrip())
    code = child.wait()
    return {"exit_code": code, "first_output_s": round(first or 0.0, 2),
            "total_s": round(time.monotonic() - started, 2), "tail": lines[-4:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--epochs", default="2")
    args = parser.parse_args()
    script = Path(sys.executable).with_name("seqlab")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        env = {**os.environ, "PREFECT_HOME": str(work / "prefect")}
        for name in ("SEQLAB_WAREHOUSE", "SEQLAB_OUTPUT_DIR", "PREFECT_API_URL"):
            env.pop(name, None)
        data = ["--data", str(REAL), "--symbol", "ETH"] if REAL.exists() else []
        command = [str(script), "run", "--preset", args.preset, "--epochs", args.epochs, *data]
        fresh = _timed_run(command, work, env)
        rerun = _timed_run(command, work, env)
    print(json.dumps({"benchmark": "rerun", "data": "coincodex" if data else "synthetic",
                      "preset": args.preset, "epochs": int(args.epochs), "cpus": os.cpu_count(),
                      "load_1m": round(os.getloadavg()[0], 2), "fresh": fresh, "rerun": rerun},
                     indent=2))


if __name__ == "__main__":
    main()
