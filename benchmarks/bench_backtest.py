"""What a walk-forward backtest costs: seconds per refit and per forecast day (JSON).

Ingests the real CoinCodex file into a temporary warehouse, trains a small grid (3 cells,
depth 1, hidden 8) to have champions, then backtests its top ``--top`` configs over the
last ``--days`` days, refitting every ``--refit-every`` days with ``--epochs`` epochs. The
refits train together through the grid runtime; the forecast pass (windows, one forward
pass per refitted model, the rows written) and the scoring (one SQL statement) follow.

    python benchmarks/bench_backtest.py [--days 60] [--refit-every 7] [--epochs 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COINCODEX = ROOT.parent / "shared" / "data" / "real" / "eth_daily_coincodex_2015-08-08_2025-08-08.csv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(COINCODEX), help="price CSV (default: CoinCodex)")
    parser.add_argument("--days", type=int, default=60, help="days walked forward")
    parser.add_argument("--refit-every", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=5, help="epochs per refit and for the grid")
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    from seqlab.config import Settings
    from seqlab.grid.spec import GridSpec
    from seqlab.runners.forecast import run_backtest
    from seqlab.runners.grid import run_grid
    from seqlab.runners.ingest import IngestOptions, ingest_source
    from seqlab.warehouse import load_prices

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        settings = Settings(root / "w.duckdb", root / "out")
        ingest_source(args.data, IngestOptions(symbol="ETH", warehouse=settings.warehouse,
                                               docs_dir=root / "docs"))
        spec = GridSpec(cells=("rnn", "lstm", "gru"), depths=(1,), norms=("none",),
                        feature_sets=("close",), seeds=(0,), epochs=args.epochs, hidden=8)
        started = time.perf_counter()
        run_grid(spec, settings, symbol="ETH", log=lambda line: None)
        grid_seconds = time.perf_counter() - started
        last = load_prices(settings.warehouse, "ETH")["date"].max()
        start = last - dt.timedelta(days=args.days)
        started = time.perf_counter()
        run = run_backtest(settings, "ETH", start=start, end=last, top=args.top,
                           refit_every=args.refit_every, epochs=args.epochs,
                           log=lambda line: None)
        total = time.perf_counter() - started
    days = run.forecasts["target_date"].n_unique()
    result = {
        "data": Path(args.data).name, "start": str(start), "end": str(last),
        "refit_every": args.refit_every, "epochs": args.epochs, "champions": args.top,
        "grid_seconds": round(grid_seconds, 2),
        "refits": run.refits, "forecasts": run.forecasts.height, "forecast_days": days,
        "scored": run.scored, "backtest_seconds": round(total, 2),
        "refit_seconds": run.refit_seconds,
        "forecast_and_score_seconds": run.forecast_seconds,
        "seconds_per_refit": round(run.refit_seconds / max(run.refits, 1), 3),
        "seconds_per_forecast_day": round(run.forecast_seconds / max(days, 1), 4),
        "forecast_share_of_refits": round(run.forecast_seconds / max(run.refit_seconds, 1e-9), 3),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
