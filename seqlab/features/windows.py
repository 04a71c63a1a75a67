"""Chronological split, train-only scaling and sliding windows for next-day forecasting.

Days are split by position: the first rows train, an optional validation tail follows,
the last ``test_fraction`` of the days are the test period. A window of ``lookback``
days ending on day ``d`` predicts close on day ``d + horizon``; the window belongs to
the split that holds its *target* day. Test windows may read inputs from train days
(those are past prices, known at forecast time), but no train target lies in the test
period and the scaler only ever sees train rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from seqlab.features.scaling import SCALER_KINDS, ScalerParams, fit_scaler
from seqlab.features.sets import TARGET_COLUMN, select_feature_columns


@dataclass(frozen=True)
class FeatureSpec:
    """How prices become model inputs; part of every run's identity."""

    feature_set: str = "close"
    lookback: int = 30  # days of history per window
    horizon: int = 1  # predict close this many days after the window's last day
    test_fraction: float = 0.2  # last share of days whose closes are test targets
    val_fraction: float = 0.0  # share of days before the test period used for validation
    scaler: str = "minmax"  # "minmax" | "standard", fitted on train rows only

    def __post_init__(self) -> None:
        if self.lookback < 1:
            raise ValueError(f"lookback must be >= 1, got {self.lookback}")
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {self.horizon}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if not 0.0 <= self.val_fraction < 1.0 - self.test_fraction:
            raise ValueError(
                f"val_fraction must be in [0, 1 - test_fraction), got {self.val_fraction}"
            )
        if self.scaler not in SCALER_KINDS:
            raise ValueError(f"unknown scaler {self.scaler!r}; allowed: {', '.join(SCALER_KINDS)}")


@dataclass(frozen=True)
class FeatureData:
    """Windows ready for torch: X arrays (N, T, F) and y arrays (N,), all float32, scaled."""

    spec: FeatureSpec
    feature_names: tuple[str, ...]
    scaler: ScalerParams
    X_train: np.ndarray  # (N_train, T, F)
    y_train: np.ndarray  # (N_train,)
    X_val: np.ndarray  # (N_val, T, F), empty when val_fraction == 0
    y_val: np.ndarray  # (N_val,)
    X_test: np.ndarray  # (N_test, T, F)
    y_test: np.ndarray  # (N_test,)
    test_dates: np.ndarray  # (N_test,) datetime64[D], the target days
    test_actual_usd: np.ndarray  # (N_test,) float64 close on the target day
    test_last_close_usd: np.ndarray  # (N_test,) float64 last known close (persistence forecast)
    fingerprint: dict = field(repr=False)
    key: str = ""

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


def _check_prices(prices: pl.DataFrame) -> None:
    """Refuse frames that would make windows silently wrong."""
    if "date" not in prices.columns:
        raise ValueError("prices need a 'date' column (canonical schema)")
    if "symbol" in prices.columns and prices.get_column("symbol").n_unique() > 1:
        symbols = sorted(prices.get_column("symbol").unique().to_list())
        raise ValueError(f"prices hold several symbols {symbols}; filter to one first")
    if prices.get_column("date").null_count() > 0:
        raise ValueError("prices have NULL dates")
    dates = prices.get_column("date").to_numpy().astype("datetime64[D]")
    not_rising = np.flatnonzero(np.diff(dates.astype(np.int64)) <= 0)
    if len(not_rising):
        row = int(not_rising[0]) + 1
        raise ValueError(
            f"prices must be strictly ascending by date; row {row} ({dates[row]}) "
            f"does not follow {dates[row - 1]}"
        )


def _check_finite(values: np.ndarray, columns: list[str], dates: np.ndarray) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"non-finite value in column {columns[col]!r} on {dates[row]}")


def _digest(dates: np.ndarray, values: np.ndarray) -> str:
    """Content hash of exactly the numbers the windows are built from."""
    sha = hashlib.sha256()
    sha.update(dates.astype("datetime64[D]").astype(np.int64).tobytes())
    sha.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return sha.hexdigest()


def _split_rows(n_rows: int, spec: FeatureSpec) -> tuple[int, int, int]:
    """Row counts (train, val, test) for a chronological split, with a clear error if short."""
    n_test = max(1, round(n_rows * spec.test_fraction))
    n_val = round(n_rows * spec.val_fraction) if spec.val_fraction > 0 else 0
    if spec.val_fraction > 0:
        n_val = max(1, n_val)
    n_train = n_rows - n_val - n_test
    n_train_windows = n_train - spec.lookback - spec.horizon + 1
    if n_train_windows < 1:
        need = spec.lookback + spec.horizon + n_val + n_test
        raise ValueError(
            f"too few rows: {n_rows} days give {n_train} train days, but lookback "
            f"{spec.lookback} + horizon {spec.horizon} need at least "
            f"{spec.lookback + spec.horizon} train days (about {need}+ days in all with "
            f"test_fraction={spec.test_fraction}, val_fraction={spec.val_fraction})"
        )
    return n_train, n_val, n_test


def _windows(scaled: np.ndarray, lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """All windows (M, T, F) and their target row indices (M,)."""
    last_start = scaled.shape[0] - lookback - horizon  # the last window must leave room for its target
    views = np.lib.stride_tricks.sliding_window_view(scaled[: last_start + lookback], lookback, axis=0)
    windows = np.ascontiguousarray(views.transpose(0, 2, 1))  # (M, F, T) -> (M, T, F)
    targets = np.arange(windows.shape[0]) + lookback - 1 + horizon
    return windows, targets


def build_features(prices: pl.DataFrame, spec: FeatureSpec) -> FeatureData:
    """Turn an ascending canonical price frame of one symbol into train/val/test windows."""
    _check_prices(prices)
    columns = select_feature_columns(prices, spec.feature_set)
    values = prices.select(columns).to_numpy().astype(np.float64)  # (N, F)
    dates = prices.get_column("date").to_numpy().astype("datetime64[D]")
    _check_finite(values, columns, dates)
    n_train, n_val, n_test = _split_rows(len(prices), spec)

    scaler = fit_scaler(values[:n_train], columns, spec.scaler)
    scaled = scaler.transform(values).astype(np.float32)  # (N, F)
    windows, targets = _windows(scaled, spec.lookback, spec.horizon)
    target_col = columns.index(TARGET_COLUMN)
    y = scaled[targets, target_col]  # (M,)

    in_train = targets < n_train
    in_val = (targets >= n_train) & (targets < n_train + n_val)
    in_test = targets >= n_train + n_val
    test_targets = targets[in_test]
    close = values[:, target_col]

    def period(start: int, stop: int) -> dict:
        if stop <= start:
            return {"rows": 0, "first": None, "last": None}
        return {"rows": stop - start, "first": str(dates[start]), "last": str(dates[stop - 1])}

    fingerprint = {
        "feature_set": spec.feature_set,
        "features": columns,
        "target": TARGET_COLUMN,
        "lookback": spec.lookback,
        "horizon": spec.horizon,
        "split": {
            "test_fraction": spec.test_fraction,
            "val_fraction": spec.val_fraction,
            "train": period(0, n_train),
            "val": period(n_train, n_train + n_val),
            "test": period(n_train + n_val, len(prices)),
        },
        "scaler": scaler.to_dict(),
        "data_digest": _digest(dates, values),
    }
    key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
    return FeatureData(
        spec=spec,
        feature_names=tuple(columns),
        scaler=scaler,
        X_train=windows[in_train],
        y_train=y[in_train],
        X_val=windows[in_val],
        y_val=y[in_val],
        X_test=windows[in_test],
        y_test=y[in_test],
        test_dates=dates[test_targets],
        test_actual_usd=close[test_targets],
        test_last_close_usd=close[test_targets - spec.horizon],
        fingerprint=fingerprint,
        key=key,
    )


def build_latest_window(
    prices: pl.DataFrame, feature_names: list[str], scaler: ScalerParams, lookback: int
) -> tuple[np.ndarray, np.datetime64]:
    """The last ``lookback`` days, scaled with a stored scaler: input (1, T, F) and its last date."""
    _check_prices(prices)
    missing = [name for name in feature_names if name not in prices.columns]
    if missing:
        raise ValueError(f"prices lack the model's feature columns {missing}")
    if len(prices) < lookback:
        raise ValueError(f"too few rows: {len(prices)} days, the model needs lookback {lookback}")
    tail = prices.tail(lookback)
    values = tail.select(feature_names).to_numpy().astype(np.float64)  # (T, F)
    dates = tail.get_column("date").to_numpy().astype("datetime64[D]")
    _check_finite(values, list(feature_names), dates)  # NULLs arrive as NaN
    scaled = scaler.transform(values).astype(np.float32)
    return scaled[None], dates[-1]

