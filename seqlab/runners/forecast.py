"""Forecasts that are kept: live ones from a retrain of the champions, and a walk-forward
backtest that builds the same ledger from history.

Both gate the prices like every trainer, refit the champions through
``seqlab.runners.refit.train_refits`` (stored as grids), forecast with one forward pass per
refitted model (``seqlab.forecast.predict``), write the rows to ``forecasts`` and score every
forecast whose target close is stored (one SQL statement).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from seqlab.config import Settings
from seqlab.engine.config import TrainConfig
from seqlab.forecast.ledger import Champion, ForecastBatch, forecast_frame
from seqlab.forecast.predict import closes_on, forecast_origins
from seqlab.forecast.schedule import walk_forward_schedule
from seqlab.grid.requests import code_version
from seqlab.report.track_record import forecast_markdown
from seqlab.runners.refit import RefitRun, RefitSet, snapshot_through, train_refits
from seqlab.warehouse.clock import utc_now
from seqlab.warehouse.forecasts import (
    champion_configs,
    load_forecast_scores,
    score_forecasts,
    store_forecasts,
)
from seqlab.warehouse.gate import require_validated
from seqlab.warehouse.runs import NOT_STUDY_PRESETS

DEFAULT_TOP = 3


def choose_champions(settings: Settings, symbol: str, *, top: int = DEFAULT_TOP,
                     grid_id: str | None = None) -> list[Champion]:
    """The ``top`` configs of ``grid_id`` (the symbol's latest full grid when None or
    "latest"), ranked on validation loss, best first."""
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    source, configs = champion_configs(
        settings.warehouse, symbol, grid_id=None if grid_id in (None, "latest") else grid_id,
        top=top, not_study=NOT_STUDY_PRESETS, timeout_s=settings.lock_timeout_s)
    return [Champion(rank, replace(TrainConfig.from_dict(c), device="auto"), source)
            for rank, c in enumerate(configs, start=1)]


# A refit forecasts the days after its prices, so it holds back no test period of its own:
# the smallest test share, which the split rounds up to one day (features.windows keeps at
# least one), so the weights fit every day before the validation tail that picks the epoch.
# Kept whole, the champion's 20% test share would leave the last ~2 years of ETH unfitted.
REFIT_TEST_FRACTION = 1e-6


def _refit_config(champion: Champion, epochs: int | None) -> TrainConfig:
    config = replace(champion.config, test_fraction=REFIT_TEST_FRACTION)
    return config if epochs is None else replace(config, epochs=epochs)


def _batches(runs: Sequence[RefitRun], champions: Sequence[Champion], epochs: int | None,
             prices: pl.DataFrame, origins_of: Callable[[RefitRun], Sequence[dt.date]],
             log: Callable[[str], None]) -> list[ForecastBatch]:
    """One forward pass per refitted model over its origins; failed refits forecast nothing."""
    by_config = {_refit_config(c, epochs).run_key(): c for c in champions}
    batches = []
    for run in runs:
        champion = by_config[run.config.run_key()]
        origins = list(origins_of(run))
        if run.status == "failed" or run.checkpoint_path is None or not origins:
            log(f"{champion.describe()} through {run.through}: {run.status}, no forecasts")
            continue
        seen = prices.filter(pl.col("date") <= max(origins))  # nothing after the last origin
        targets, predicted = forecast_origins(Path(run.checkpoint_path), seen, origins,
                                              expected_sha256=run.checkpoint_sha256,
                                              run_id=run.run_id)
        batches.append(ForecastBatch(champion, run.config, run.run_id, run.grid_id, run.through,
                                     origins, targets, predicted, closes_on(seen, origins)))
    return batches


@dataclass(frozen=True)
class ForecastRun:
    """What a retrain or backtest wrote: its batch id, the rows, and the scoring it did."""

    batch_id: str
    mode: str
    symbol: str
    data_version: str
    champions: list[Champion]
    forecasts: pl.DataFrame  # the rows this run made (some may have been in the ledger already)
    stored: int
    scored: int
    refits: int
    failed_refits: int
    refit_seconds: float
    forecast_seconds: float  # windows + forward passes + store + scoring

    def summary(self) -> str:
        return (f"{self.mode}: {self.forecasts.height} forecasts ({self.stored} new) from "
                f"{self.refits} refits ({self.failed_refits} failed); {self.scored} scored")


def _new_batch_id(mode: str) -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{mode}-{uuid.uuid4().hex[:8]}"


def _write(settings: Settings, symbol: str, mode: str, batch_id: str, data_version: str,
           batches: list[ForecastBatch]) -> tuple[pl.DataFrame, int, int]:
    frame = forecast_frame(batches, symbol=symbol, mode=mode, batch_id=batch_id,
                           data_version=data_version, code_version=code_version(),
                           made_at=utc_now())
    stored = store_forecasts(settings.warehouse, frame, timeout_s=settings.lock_timeout_s)
    scored = score_forecasts(settings.warehouse, symbol, timeout_s=settings.lock_timeout_s)
    return frame, stored, scored


def retrain_champions(settings: Settings, symbol: str, *, top: int = DEFAULT_TOP,
                      grid_id: str | None = None, pack_mode: str = "streams",
                      pack_size: int = 0, log: Callable[[str], None] = print) -> ForecastRun:
    """Refit the champions on every validated price, store their runs as a refit grid, write
    one live forecast per champion for the day after the latest price, and score every
    earlier forecast whose target close has arrived."""
    validated = require_validated(settings.warehouse, symbol, timeout_s=settings.lock_timeout_s)
    prices = validated.prices
    champions = choose_champions(settings, symbol, top=top, grid_id=grid_id)
    last = prices.get_column("date").max()
    path, version = snapshot_through(prices, symbol, settings.output_dir / "snapshots")
    started = time.perf_counter()
    runs = train_refits(settings, symbol,
                        [RefitSet(last, tuple(_refit_config(c, None) for c in champions), path, version,
                                  prices.height)],
                        source_grid=champions[0].source_grid, pack_mode=pack_mode,
                        pack_size=pack_size, log=log)
    refit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    batches = _batches(runs, champions, None, prices, lambda run: [last], log)
    batch_id = _new_batch_id("live")
    frame, stored, scored = _write(settings, symbol, "live", batch_id, validated.data_version,
                                   batches)
    return ForecastRun(batch_id, "live", symbol, validated.data_version, champions, frame,
                       stored, scored, len(runs), sum(r.status == "failed" for r in runs),
                       round(refit_seconds, 3), round(time.perf_counter() - started, 3))


def run_backtest(settings: Settings, symbol: str, *, start: dt.date, end: dt.date | None = None,
                 top: int = DEFAULT_TOP, grid_id: str | None = None, refit_every: int = 7,
                 epochs: int | None = None, pack_mode: str = "streams", pack_size: int = 0,
                 log: Callable[[str], None] = print) -> ForecastRun:
    """Walk forward over stored history: refit each champion on the prices through each
    refit date (every ``refit_every`` days from ``start``) and forecast every day until the
    next refit, as ``backtest`` rows of the ledger, scored at once."""
    if epochs is not None and epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    validated = require_validated(settings.warehouse, symbol, timeout_s=settings.lock_timeout_s)
    prices = validated.prices
    champions = choose_champions(settings, symbol, top=top, grid_id=grid_id)
    horizons = {c.config.horizon for c in champions}
    if len(horizons) != 1:
        raise ValueError(f"champions forecast different horizons {sorted(horizons)}")
    blocks = walk_forward_schedule(prices.get_column("date").to_list(), start=start, end=end,
                                   refit_every=refit_every, horizon=horizons.pop())
    configs = tuple(_refit_config(c, epochs) for c in champions)
    refits, origins_of = [], {}
    for block in blocks:
        seen = prices.filter(pl.col("date") <= block.refit_date)
        through = seen.get_column("date").max()
        path, version = snapshot_through(seen, symbol, settings.output_dir / "snapshots")
        refits.append(RefitSet(through, configs, path, version, seen.height))
        origins_of[through] = block.origins
    log(f"backtest of {len(champions)} champions: {len(blocks)} refit dates, "
        f"{sum(len(b.origins) for b in blocks)} forecast days")
    started = time.perf_counter()
    runs = train_refits(settings, symbol, refits, source_grid=champions[0].source_grid,
                        pack_mode=pack_mode, pack_size=pack_size, log=log)
    refit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    batches = _batches(runs, champions, epochs, prices, lambda run: origins_of[run.through], log)
    batch_id = _new_batch_id("backtest")
    frame, stored, scored = _write(settings, symbol, "backtest", batch_id,
                                   validated.data_version, batches)
    return ForecastRun(batch_id, "backtest", symbol, validated.data_version, champions, frame,
                       stored, scored, len(runs), sum(r.status == "failed" for r in runs),
                       round(refit_seconds, 3), round(time.perf_counter() - started, 3))


def forecast_artifact(settings: Settings, run: ForecastRun) -> str:
    """Markdown: the forecasts ``run`` made and the symbol's track record so far in its mode."""
    scores = load_forecast_scores(settings.warehouse, run.symbol, mode=run.mode,
                                  timeout_s=settings.lock_timeout_s)
    return forecast_markdown(run.forecasts, scores, mode=run.mode)


def score_ledger_of(settings: Settings, symbol: str) -> int:
    """Score every stored forecast of ``symbol`` whose target close has arrived."""
    return score_forecasts(settings.warehouse, symbol, timeout_s=settings.lock_timeout_s)
