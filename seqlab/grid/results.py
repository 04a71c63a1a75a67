"""Finished runs as typed frames (the result tables' one schema) and their Parquet files.

Shards never open the warehouse: they write these frames under a results location (a path
or any fsspec URL), and the grid's parent loads them into DuckDB, the only writer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from seqlab.grid.requests import RunOutcome
from seqlab.schemas.run_tables import (
    EPOCH_COLUMNS,
    FEATURE_COLUMNS,
    FRAME_NAMES,
    PREDICTION_COLUMNS,
    RUN_COLUMNS,
)

SPLITS = ("train", "val", "test")
# The config's columns on a run's row, beside its JSON.
_CONFIG_COLUMNS = ("cell", "depth", "norm", "feature_set", "seed", "epochs", "lookback", "hidden",
                   "batch_size", "lr", "val_fraction")


@dataclass(frozen=True)
class RunFrames:
    runs: pl.DataFrame
    epoch_metrics: pl.DataFrame
    predictions: pl.DataFrame
    features: pl.DataFrame

    def as_dict(self) -> dict[str, pl.DataFrame]:
        return {name: getattr(self, name) for name in FRAME_NAMES}

    @classmethod
    def concat(cls, frames: list[RunFrames]) -> RunFrames:
        return cls(**{name: pl.concat([getattr(f, name) for f in frames]) for name in FRAME_NAMES})


def _run_row(outcome: RunOutcome, grid_id: str) -> dict:
    request = outcome.request
    config = request.config
    # JSON-able values: NaN and inf (a diverged epoch's loss) are stored as NULL.
    result = outcome.result.to_dict() if outcome.result is not None else {}
    row = {name: result.get(name) for name in RUN_COLUMNS}
    row.update(
        run_id=request.run_id, grid_id=grid_id, run_key=config.run_key(),
        symbol=request.symbol, data_version=request.data_version,
        code_version=request.code_version, config=json.dumps(config.to_dict(), sort_keys=True),
        worker=outcome.worker, error=outcome.error,
        determinism=json.dumps(result.get("determinism", {}), sort_keys=True),
        device=result.get("device", request.device),
        status=result.get("status", "failed") if outcome.error is None else "failed",
        **{name: getattr(config, name) for name in _CONFIG_COLUMNS},
        feature_columns=json.dumps(result["feature_names"]) if result.get("feature_names") else None,
        checkpoint_sha256=_checkpoint_sha256(result.get("checkpoint_path")),
    )
    split = (result.get("feature_fingerprint") or {}).get("split", {})
    for name in SPLITS:
        period = split.get(name) or {}
        for end in ("first", "last"):
            row[f"{name}_{end}"] = _as_date(period[end]) if period.get(end) else None
    return row


def _checkpoint_sha256(path: str | None) -> str | None:
    """What `seqlab predict` checks the file against: the bytes this run wrote."""
    if not path or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def outcome_frames(outcomes: list[RunOutcome], grid_id: str) -> RunFrames:
    """Runs, per-epoch metrics and test predictions of finished requests, as typed frames."""
    runs = pl.DataFrame([_run_row(o, grid_id) for o in outcomes], schema=RUN_COLUMNS)
    epochs, predictions, features = [], [], {}
    for outcome in outcomes:
        if outcome.result is None:
            continue
        result = outcome.result.to_dict()
        rid = outcome.request.run_id
        if result.get("feature_key"):
            features[result["feature_key"]] = {
                "feature_key": result["feature_key"], "symbol": outcome.request.symbol,
                "data_version": outcome.request.data_version,
                "feature_set": outcome.request.config.feature_set,
                "fingerprint": json.dumps(result.get("feature_fingerprint", {}), sort_keys=True),
                "scaler": json.dumps(result.get("scaler", {}), sort_keys=True),
            }
        val = result.get("val_loss") or []
        for i, (train, test, secs) in enumerate(
            zip(result["train_loss"], result["test_loss"], result["epoch_seconds"], strict=False)
        ):
            epochs.append({"run_id": rid, "epoch": i + 1, "train_loss": train,
                           "test_loss": test, "seconds": secs,
                           "val_loss": val[i] if i < len(val) else None})
        p = result.get("predictions") or {}
        for d, actual, predicted, baseline in zip(
            p.get("date", []), p.get("actual_usd", []), p.get("predicted_usd", []),
            p.get("baseline_usd", []), strict=False,
        ):
            predictions.append({"run_id": rid, "date": _as_date(d), "actual_usd": actual,
                                "predicted_usd": predicted, "baseline_usd": baseline})
    return RunFrames(
        runs=runs,
        epoch_metrics=pl.DataFrame(epochs, schema=EPOCH_COLUMNS),
        predictions=pl.DataFrame(predictions, schema=PREDICTION_COLUMNS),
        features=pl.DataFrame(list(features.values()), schema=FEATURE_COLUMNS),
    )


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def write_frames(frames: RunFrames, location: str) -> list[str]:
    """Write a shard's frames as Parquet under ``location`` (a local path or any fsspec URL).

    Each file is written under a temporary name and renamed, so a reader never sees half a file.
    """
    import fsspec

    fs, root = fsspec.core.url_to_fs(location)
    fs.makedirs(root, exist_ok=True)
    written = []
    for name in FRAME_NAMES:
        target = f"{root.rstrip('/')}/{name}.parquet"
        with fs.open(target + ".tmp", "wb") as out:
            getattr(frames, name).write_parquet(out)
        fs.mv(target + ".tmp", target)
        written.append(target)
    return written


def read_frames(location: str) -> RunFrames:
    """Inverse of :func:`write_frames`; a missing file raises FileNotFoundError naming it."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(location)
    loaded = {}
    for name in FRAME_NAMES:
        target = f"{root.rstrip('/')}/{name}.parquet"
        if not fs.exists(target):
            raise FileNotFoundError(f"shard results missing: {target}")
        with fs.open(target, "rb") as handle:
            loaded[name] = pl.read_parquet(handle)
    return RunFrames(**loaded)
