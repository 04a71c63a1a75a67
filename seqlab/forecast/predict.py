"""Forecasts for many origin days with one model, in one forward pass.

Each origin's window is the ``lookback`` stored days ending on that origin, scaled with the
checkpoint's own (train-only) scaler: the same inputs ``predict_next`` builds for the latest
day, for every origin at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import torch

from seqlab.engine.checkpoint import load_checkpoint
from seqlab.features.scaling import ScalerParams
from seqlab.features.sets import TARGET_COLUMN

_EVAL_CHUNK = 4096  # windows per forward pass: bounds memory on a very long backtest


def origin_windows(prices: pl.DataFrame, feature_names: Sequence[str], scaler: ScalerParams,
                   lookback: int, origins: Sequence[dt.date]) -> np.ndarray:
    """Scaled windows (M, T, F), one per origin, each ending on its origin day.

    ValueError naming the day when an origin is not a stored day or has fewer than
    ``lookback`` stored days up to it.
    """
    missing = [name for name in feature_names if name not in prices.columns]
    if missing:
        raise ValueError(f"prices lack the model's feature columns {missing}")
    dates = prices.get_column("date").to_numpy().astype("datetime64[D]")  # (N,) ascending
    wanted = np.array(origins, dtype="datetime64[D]")  # (M,)
    rows = np.searchsorted(dates, wanted)
    found = (rows < dates.size) & (dates[np.minimum(rows, dates.size - 1)] == wanted)
    if not found.all():
        raise ValueError(f"origin {wanted[~found][0]} is not a stored price day")
    short = rows < lookback - 1
    if short.any():
        raise ValueError(f"origin {wanted[short][0]} has fewer than lookback {lookback} "
                         "stored days up to it")
    values = prices.select(list(feature_names)).to_numpy().astype(np.float64)  # (N, F)
    if not np.isfinite(values[rows.min() - lookback + 1: rows.max() + 1]).all():
        raise ValueError("non-finite feature value inside a forecast window")
    scaled = scaler.transform(values).astype(np.float32)  # (N, F)
    views = np.lib.stride_tricks.sliding_window_view(scaled, lookback, axis=0)  # (N-T+1, F, T)
    return np.ascontiguousarray(views[rows - lookback + 1].transpose(0, 2, 1))  # (M, T, F)


def forecast_origins(checkpoint_path: Path, prices: pl.DataFrame, origins: Sequence[dt.date], *,
                     expected_sha256: str | None = None, run_id: str | None = None,
                     ) -> tuple[list[dt.date], np.ndarray]:
    """(target days, predicted closes in USD (M,)) for each origin, with the checkpoint's
    model: the window ending on origin d forecasts the close on d + horizon. A checkpoint
    whose bytes differ from ``expected_sha256`` (the run's record) is refused."""
    checkpoint = load_checkpoint(checkpoint_path, expected_sha256=expected_sha256, run_id=run_id)
    config = checkpoint.config
    windows = origin_windows(prices, checkpoint.feature_names, checkpoint.scaler,
                             config.lookback, origins)
    with torch.no_grad():
        scaled = np.concatenate([
            checkpoint.model(torch.from_numpy(windows[i:i + _EVAL_CHUNK])).numpy()  # (m,)
            for i in range(0, len(windows), _EVAL_CHUNK)])
    closes = checkpoint.scaler.inverse_column(scaled, TARGET_COLUMN).astype(np.float64)
    targets = [d + dt.timedelta(days=config.horizon) for d in origins]
    return targets, closes


def closes_on(prices: pl.DataFrame, days: Sequence[dt.date]) -> np.ndarray:
    """The stored close on each of ``days`` (the persistence forecast from that origin)."""
    lookup = dict(zip(prices.get_column("date").to_list(),
                      prices.get_column(TARGET_COLUMN).to_list(), strict=True))
    return np.array([lookup[d] for d in days], dtype=np.float64)
