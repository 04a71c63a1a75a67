"""A deterministic, realistic *synthetic* ETH-like daily series so seqlab runs with no download.

The series is clearly synthetic: its default symbol is ``ETH-SYNTHETIC`` and its file name says so.
It imitates what matters for the study: heavy-tailed daily returns (Student-t), volatility regimes
that switch, a drift schedule with bull and bear phases, intraday ranges consistent with open/close,
volume that rises with volatility, a growing supply for market cap, and a few missing days.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

SYNTHETIC_SYMBOL = "ETH-SYNTHETIC"
SAMPLE_FILE_NAME = "synthetic_eth_daily_sample.csv"

# (phase length in days, mean daily log drift): loosely shaped like ETH's history so that the
# scale spans cents to thousands of dollars, which is what makes BatchNorm's mixed batches hard.
_DRIFT_SCHEDULE: tuple[tuple[int, float], ...] = (
    (150, -0.004), (500, 0.0085), (380, -0.0065), (420, 0.0005),
    (520, 0.0070), (420, -0.0038), (420, 0.0030), (420, 0.0005),
)
# Offsets the -sigma^2/2 drag of log returns so the schedule's phases, not the noise, set the level.
_VOLATILITY_DRAG = 0.0007
# Volatility regimes (daily sigma) and the chance per day of leaving the current one.
_REGIME_SIGMA = np.array([0.028, 0.045, 0.085])
_REGIME_STAY = 0.985


@dataclass(frozen=True)
class SampleSpec:
    start: date = date(2015, 8, 7)
    days: int = 3650
    start_price: float = 2.8
    seed: int = 7
    gaps: int = 4
    symbol: str = SYNTHETIC_SYMBOL

    def __post_init__(self) -> None:
        # The symbol is written into every row, and ingest refuses a file whose rows name
        # another symbol: so these prices can only ever be stored as something SYNTHETIC.
        if "SYNTHETIC" not in self.symbol.upper():
            raise ValueError(
                f"sample symbol {self.symbol!r} must say SYNTHETIC (default {SYNTHETIC_SYMBOL})"
            )


def generate_sample_prices(spec: SampleSpec = SampleSpec()) -> pl.DataFrame:
    """Return the synthetic series as a canonical frame (ascending by date, a few days missing)."""
    rng = np.random.default_rng(spec.seed)
    drift = np.concatenate([np.full(n, mu) for n, mu in _DRIFT_SCHEDULE])
    drift = np.resize(drift, spec.days) + _VOLATILITY_DRAG

    regimes = np.empty(spec.days, dtype=np.int64)
    regime = 1
    for day in range(spec.days):
        if rng.random() > _REGIME_STAY:
            regime = int(rng.integers(0, len(_REGIME_SIGMA)))
        regimes[day] = regime
    sigma = _REGIME_SIGMA[regimes]

    # Student-t with 3 degrees of freedom, rescaled to unit variance: fat tails like crypto returns.
    shocks = rng.standard_t(3, spec.days) / np.sqrt(3.0)
    log_returns = drift + sigma * np.clip(shocks, -8, 8)
    close = spec.start_price * np.exp(np.cumsum(log_returns))
    open_ = np.concatenate([[spec.start_price], close[:-1]]) * np.exp(rng.normal(0, 0.002, spec.days))
    body_high = np.maximum(open_, close)
    body_low = np.minimum(open_, close)
    high = body_high * np.exp(np.abs(rng.normal(0, 0.5, spec.days)) * sigma)
    low = body_low * np.exp(-np.abs(rng.normal(0, 0.5, spec.days)) * sigma)
    activity = np.exp(rng.normal(0, 0.35, spec.days)) * (1 + 25 * np.abs(log_returns))
    supply = np.linspace(72e6, 120.7e6, spec.days)
    volume = close * supply * 0.02 * activity
    market_cap = close * supply

    dates = [spec.start + timedelta(days=i) for i in range(spec.days)]
    frame = pl.DataFrame(
        {
            "symbol": spec.symbol,
            "date": dates,
            "open": open_, "high": high, "low": low, "close": close,
            "volume": volume, "market_cap": market_cap,
        }
    )
    missing = rng.choice(np.arange(30, spec.days - 30), size=spec.gaps, replace=False)
    return frame.filter(~pl.int_range(pl.len()).is_in(missing.tolist()))


class SampleExistsError(ValueError):
    """The sample's path already names a file or a link: a new file only is written."""


def write_sample_csv(path: Path, spec: SampleSpec = SampleSpec(), *, new_only: bool = False) -> Path:
    """Write the synthetic series as a canonical CSV; a folder gets the default file name.

    Never through a symbolic link: the file is created exclusively (``new_only``: anything
    already at ``path``, a link included, is refused with SampleExistsError) or written
    beside it and renamed over it (seqlab's own sample folder, rewritten by every run).
    """
    path = Path(path)
    if path.is_dir() or path.suffix == "":
        path = path / SAMPLE_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    data = generate_sample_prices(spec).write_csv(float_precision=6).encode()
    if new_only:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except FileExistsError:
            raise SampleExistsError(f"{path} already exists; seqlab sample-data writes only a "
                                    "new file: remove it or give another path") from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)  # replaces a link itself, never its target
    return path
