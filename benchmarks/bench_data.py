"""Prices for the training benchmarks.

In order: a canonical Parquet file named by ``SEQLAB_BENCH_PRICES`` (how a GPU machine
without the ingest stack gets the real series), the real CoinCodex file through seqlab's
own parser and row validation when ../shared is present, else seqlab's synthetic series,
unless ``SEQLAB_BENCH_REQUIRE_REAL=1``: then no real prices is an error, never a silent
fallback (a GPU measurement on synthetic prices is not a measurement of the study).
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from seqlab.sample import generate_sample_prices

REPO_ROOT = Path(__file__).resolve().parents[1]
COINCODEX = REPO_ROOT.parent / "shared" / "data" / "real" / "eth_daily_coincodex_2015-08-08_2025-08-08.csv"


def load_real_prices() -> pl.DataFrame:
    """The real CoinCodex file, parsed and row-validated by seqlab (needs the ingest stack)."""
    from seqlab.ingest.parse import parse_source
    from seqlab.ingest.sources import read_sources
    from seqlab.schemas.canonical import CANONICAL_COLUMNS
    from seqlab.schemas.prices import validate_rows

    (raw,) = read_sources(str(COINCODEX))
    valid = validate_rows(parse_source(raw).rows).valid
    return valid.select(CANONICAL_COLUMNS).sort("date")


def load_prices() -> tuple[pl.DataFrame, str]:
    """Canonical prices ascending by date, and a line saying where they came from."""
    exported = os.environ.get("SEQLAB_BENCH_PRICES")
    if exported:
        return pl.read_parquet(exported).sort("date"), f"parquet: {Path(exported).name}"
    if COINCODEX.is_file():
        return load_real_prices(), f"real: {COINCODEX.name}"
    if os.environ.get("SEQLAB_BENCH_REQUIRE_REAL") == "1":
        raise SystemExit(f"no real prices: SEQLAB_BENCH_PRICES is unset and {COINCODEX} is "
                         "missing (SEQLAB_BENCH_REQUIRE_REAL=1 refuses the synthetic sample)")
    return generate_sample_prices(), "generated: seqlab's synthetic sample (ETH-SYNTHETIC)"


if __name__ == "__main__":  # export the real series for a machine without the ingest stack
    import sys

    target = Path(sys.argv[1])
    target.parent.mkdir(parents=True, exist_ok=True)
    load_real_prices().write_parquet(target)
    print(f"wrote {target}")
