"""Run identity and result records: pure helpers shared by local and pool dispatch.

A run is keyed by (config, data_version, code_version, symbol): the same config trained on the
same prices by the same code is the same run, and its stored result is reused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl
import torch

import seqlab
from seqlab.engine.config import TrainConfig
from seqlab.engine.result import TrainResult

# The code whose change changes what a run computes.
_CODE_PACKAGES = ("engine", "models", "features")


def code_version() -> str:
    """Hash of the training code (engine, models, features) plus the package version."""
    root = Path(seqlab.__file__).parent
    digest = hashlib.sha256(seqlab.__version__.encode())
    for package in _CODE_PACKAGES:
        for path in sorted((root / package).glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_id(config: TrainConfig, *, data_version: str, code: str, symbol: str) -> str:
    text = json.dumps([config.run_key(), data_version, code, symbol])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class RunRequest:
    """Everything a worker needs to train one config; plain data, so it hashes and pickles."""

    run_id: str
    config: dict
    symbol: str
    data_version: str
    code_version: str
    prices_path: str  # Parquet snapshot of the prices (workers never open the warehouse)
    checkpoint_dir: str
    device: str = "auto"

    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict({**self.config, "device": self.device})


def plan_requests(
    configs: list[TrainConfig], *, symbol: str, data_version: str, code: str, prices_path: str,
    checkpoint_dir: str,
) -> list[RunRequest]:
    """One request per config, identified by (config, data, code, symbol)."""
    return [
        RunRequest(
            run_id=run_id(c, data_version=data_version, code=code, symbol=symbol),
            config=c.to_dict(), symbol=symbol, data_version=data_version, code_version=code,
            prices_path=prices_path, checkpoint_dir=checkpoint_dir, device=c.device,
        )
        for c in configs
    ]


def describe(outcome: RunOutcome) -> str:
    """One log line's worth: the config and how it ended."""
    c = outcome.request.config
    what = f"{c['cell']} depth {c['depth']} norm {c['norm']} {c['feature_set']} seed {c['seed']}"
    if outcome.error:
        return f"{what}: FAILED {outcome.error}"
    r = outcome.result or {}
    if r.get("status") == "diverged":
        return f"{what}: diverged at epoch {r.get('diverged_epoch')}"
    chosen = "validation" if r.get("selected_on") == "validation" else "last epoch"
    return (f"{what}: epoch {r.get('best_epoch')} ({chosen}), test loss "
            f"{r.get('best_test_loss'):.3g}, RMSE ${r.get('test_rmse_usd'):,.2f}"
            f" vs persistence ${r.get('baseline_rmse_usd'):,.2f} on {r.get('device')}")


@dataclass(frozen=True)
class RunOutcome:
    """A finished request: the engine's result, or the error that stopped it."""

    request: RunRequest
    result: dict | None  # TrainResult.to_dict()
    error: str | None = None
    worker: str = ""


FRAME_NAMES = ("runs", "epoch_metrics", "predictions", "features")

RUN_COLUMNS = {
    "run_id": pl.String, "grid_id": pl.String, "run_key": pl.String, "symbol": pl.String,
    "data_version": pl.String, "code_version": pl.String, "cell": pl.String, "depth": pl.Int64,
    "norm": pl.String, "feature_set": pl.String, "seed": pl.Int64, "epochs": pl.Int64,
    "lookback": pl.Int64, "hidden": pl.Int64, "batch_size": pl.Int64, "lr": pl.Float64,
    "config": pl.String, "device": pl.String, "worker": pl.String, "status": pl.String,
    "error": pl.String, "diverged_epoch": pl.Int64, "epochs_run": pl.Int64,
    "final_test_loss": pl.Float64, "best_test_loss": pl.Float64, "best_epoch": pl.Int64,
    "test_rmse_usd": pl.Float64, "test_mae_usd": pl.Float64, "test_mape_pct": pl.Float64,
    "test_directional_accuracy": pl.Float64, "baseline_rmse_usd": pl.Float64,
    "baseline_mae_usd": pl.Float64, "baseline_mape_pct": pl.Float64,
    "baseline_directional_accuracy": pl.Float64, "n_train": pl.Int64, "n_test": pl.Int64,
    "n_parameters": pl.Int64, "feature_key": pl.String, "determinism": pl.String,
    "torch_version": pl.String, "seconds": pl.Float64, "checkpoint_path": pl.String,
    "selected_on": pl.String, "val_fraction": pl.Float64, "best_val_loss": pl.Float64,
    "n_val": pl.Int64, "feature_columns": pl.String, "train_first": pl.Date,
    "train_last": pl.Date, "val_first": pl.Date, "val_last": pl.Date, "test_first": pl.Date,
    "test_last": pl.Date,
}
SPLITS = ("train", "val", "test")
EPOCH_COLUMNS = {
    "run_id": pl.String, "epoch": pl.Int64, "train_loss": pl.Float64, "test_loss": pl.Float64,
    "seconds": pl.Float64, "val_loss": pl.Float64,
}
FEATURE_COLUMNS = {
    "feature_key": pl.String, "symbol": pl.String, "data_version": pl.String,
    "feature_set": pl.String, "fingerprint": pl.String, "scaler": pl.String,
}
PREDICTION_COLUMNS = {
    "run_id": pl.String, "date": pl.Date, "actual_usd": pl.Float64, "predicted_usd": pl.Float64,
    "baseline_usd": pl.Float64,
}


@dataclass(frozen=True)
class RunFrames:
    runs: pl.DataFrame
    epoch_metrics: pl.DataFrame
    predictions: pl.DataFrame
    features: pl.DataFrame

    def as_dict(self) -> dict[str, pl.DataFrame]:
        return {name: getattr(self, name) for name in FRAME_NAMES}


def _run_row(outcome: RunOutcome, grid_id: str) -> dict:
    request, result = outcome.request, outcome.result or {}
    config = request.config
    row = {name: result.get(name) for name in RUN_COLUMNS}
    row.update(
        run_id=request.run_id, grid_id=grid_id, run_key=TrainConfig.from_dict(config).run_key(),
        symbol=request.symbol, data_version=request.data_version,
        code_version=request.code_version, config=json.dumps(config, sort_keys=True),
        worker=outcome.worker, error=outcome.error,
        determinism=json.dumps(result.get("determinism", {}), sort_keys=True),
        device=result.get("device", request.device),
        status=result.get("status", "failed") if outcome.error is None else "failed",
        **{k: config[k] for k in ("cell", "depth", "norm", "feature_set", "seed", "epochs",
                                  "lookback", "hidden", "batch_size", "lr")},
        val_fraction=config.get("val_fraction", 0.0),
        feature_columns=json.dumps(result["feature_names"]) if result.get("feature_names") else None,
    )
    split = (result.get("feature_fingerprint") or {}).get("split", {})
    for name in SPLITS:
        period = split.get(name) or {}
        for end in ("first", "last"):
            row[f"{name}_{end}"] = _as_date(period[end]) if period.get(end) else None
    return row


def outcome_frames(outcomes: list[RunOutcome], grid_id: str) -> RunFrames:
    """Runs, per-epoch metrics and test predictions of finished requests, as typed frames."""
    runs = pl.DataFrame([_run_row(o, grid_id) for o in outcomes], schema=RUN_COLUMNS)
    epochs, predictions, features = [], [], {}
    for outcome in outcomes:
        result = outcome.result
        if not result:
            continue
        rid = outcome.request.run_id
        if result.get("feature_key"):
            features[result["feature_key"]] = {
                "feature_key": result["feature_key"], "symbol": outcome.request.symbol,
                "data_version": outcome.request.data_version,
                "feature_set": outcome.request.config["feature_set"],
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


def read_prices(location: str) -> pl.DataFrame:
    """A prices snapshot (local path or fsspec URL) written by the grid's parent."""
    import fsspec

    with fsspec.open(location, "rb") as handle:
        return pl.read_parquet(handle)


def train_request(request: RunRequest, worker: str = "") -> RunOutcome:
    """Train one request on the worker's device; a crash is an outcome, not an exception.

    On CUDA the step is replayed as a CUDA graph (``seqlab.engine.graphed``), which falls
    back to the eager engine, and says so on the result, where capture is impossible.
    """
    from seqlab.engine.graphed import train_on_device

    try:
        result: TrainResult = train_on_device(
            request.train_config(), read_prices(request.prices_path),
            checkpoint_dir=Path(request.checkpoint_dir),
        )
        return RunOutcome(request, result.to_dict(), None, worker)
    except Exception as exc:  # recorded on the run's row; the rest of the grid goes on
        if isinstance(exc, torch.OutOfMemoryError) and torch.cuda.is_available():
            torch.cuda.empty_cache()  # hand the failed run's cached blocks back to the GPU
        return RunOutcome(request, None, f"{type(exc).__name__}: {exc}", worker)


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
