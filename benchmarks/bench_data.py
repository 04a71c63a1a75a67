"""Prices for the training benchmarks: the real CoinCodex file through seqlab's own parser and
row validation when ../shared is present, else seqlab's synthetic sample series."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from seqlab.ingest.parse import parse_source
from seqlab.ingest.sources import read_sources
from seqlab.sample import generate_sample_prices
from seqlab.schemas.canonical import CANONICAL_COLUMNS
from seqlab.schemas.prices import validate_rows

REPO_ROOT = Path(__file__).resolve().parents[1]
COINCODEX = REPO_ROOT.parent / "shared" / "data" / "real" / "eth_daily_coincodex_2015-08-08_2025-08-08.csv"


def load_prices() -> tuple[pl.DataFrame, str]:
    """Canonical prices ascending by date, and a line saying where they came from."""
    if COINCODEX.is_file():
        (raw,) = read_sources(str(COINCODEX))
        valid = validate_rows(parse_source(raw).rows).valid
        return valid.select(CANONICAL_COLUMNS).sort("date"), f"real: {COINCODEX.name}"
    return generate_sample_prices(), "generated: seqlab's synthetic sample (ETH-SYNTHETIC)"
