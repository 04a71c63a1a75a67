"""The rows a forecast becomes in the ledger (``forecasts``), and the champions behind them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from seqlab.engine.config import TrainConfig
from seqlab.schemas.forecasts import FORECAST_SCHEMA

MODES = ("live", "backtest")


@dataclass(frozen=True)
class Champion:
    """A config chosen on validation from a full grid, refitted as new prices arrive."""

    rank: int  # 1 = lowest validation loss
    config: TrainConfig  # as the grid trained it: its run_key names the champion
    source_grid: str

    @property
    def key(self) -> str:
        return self.config.run_key()

    def describe(self) -> str:
        c = self.config
        return f"#{self.rank} {c.cell} depth {c.depth} norm {c.norm} {c.feature_set} seed {c.seed}"


def forecast_id(mode: str, run_id: str, origin: dt.date, target: dt.date) -> str:
    """The same forecast (mode, model, origin, target) always has the same id."""
    text = json.dumps([mode, run_id, origin.isoformat(), target.isoformat()])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class ForecastBatch:
    """Forecasts one model made: one per origin, with what the ledger records beside them."""

    champion: Champion
    refit_config: TrainConfig  # the config as refitted (e.g. with --epochs)
    run_id: str
    grid_id: str
    trained_through: dt.date
    origins: Sequence[dt.date]
    targets: Sequence[dt.date]
    predicted_usd: np.ndarray  # (M,)
    persistence_usd: np.ndarray  # (M,) the close on each origin


def forecast_frame(batches: Sequence[ForecastBatch], *, symbol: str, mode: str, batch_id: str,
                   data_version: str, code_version: str, made_at: dt.datetime) -> pl.DataFrame:
    """The ledger rows of ``batches``; ValueError when a row would see its target day."""
    if mode not in MODES:
        raise ValueError(f"unknown forecast mode {mode!r}; allowed: {', '.join(MODES)}")
    rows = []
    for b in batches:
        config_json = json.dumps(b.refit_config.to_dict(), sort_keys=True)
        for origin, target, predicted, persistence in zip(
                b.origins, b.targets, b.predicted_usd, b.persistence_usd, strict=True):
            if not b.trained_through <= origin < target:
                raise ValueError(f"forecast of {target} from origin {origin} by a model trained "
                                 f"through {b.trained_through} would see its target")
            rows.append({
                "forecast_id": forecast_id(mode, b.run_id, origin, target), "symbol": symbol,
                "mode": mode, "origin_date": origin, "target_date": target,
                "trained_through": b.trained_through, "config_key": b.champion.key,
                "config": config_json, "champion_rank": b.champion.rank,
                "champion_of": b.champion.source_grid, "run_id": b.run_id, "grid_id": b.grid_id,
                "batch_id": batch_id, "predicted_usd": float(predicted),
                "persistence_usd": float(persistence), "data_version": data_version,
                "code_version": code_version, "made_at": made_at,
            })
    return pl.DataFrame(rows, schema=FORECAST_SCHEMA)

