"""Best-model checkpoints and next-day forecasts from them.

A checkpoint holds only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)`` (no pickled code runs on load).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
from torch import nn

from seqlab.engine.config import TrainConfig
from seqlab.features.scaling import ScalerParams
from seqlab.features.sets import TARGET_COLUMN
from seqlab.features.windows import FeatureData, build_latest_window
from seqlab.models.rnn import ModelConfig, StackedRNN

CHECKPOINT_FORMAT = "seqlab-checkpoint/1"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (CPU, eval mode) and what it needs to forecast."""

    model: StackedRNN
    config: TrainConfig
    scaler: ScalerParams
    feature_names: list[str]
    feature_key: str
    best_epoch: int
    best_test_loss: float


def save_checkpoint(
    path: Path,
    model: nn.Module,
    config: TrainConfig,
    data: FeatureData,
    *,
    best_epoch: int,
    best_test_loss: float,
) -> Path:
    """Write weights + config + scaler + feature names to ``path`` (atomically) and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": config.to_dict(),
        "model_config": asdict(model.config),
        "scaler": data.scaler.to_dict(),
        "feature_names": list(data.feature_names),
        "feature_key": data.key,
        "best_epoch": best_epoch,
        "best_test_loss": best_test_loss,
        "torch_version": str(torch.__version__),
    }
    partial = path.with_suffix(path.suffix + ".partial")
    torch.save(payload, partial)
    partial.replace(path)  # readers never see a half-written file
    return path


class CheckpointMismatch(ValueError):
    """The file at a run's checkpoint path is not the one the run stored."""


def file_sha256(path: Path) -> str:
    """The sha256 of a checkpoint file, as ``runs.checkpoint_sha256`` records it."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_checkpoint(path: Path, *, expected_sha256: str | None = None,
                    run_id: str | None = None) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint` onto the CPU.

    With ``expected_sha256`` (what the run recorded) a file with other bytes is refused
    (CheckpointMismatch): the bytes hashed are the bytes loaded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise CheckpointMismatch(
            f"checkpoint {path} is not run {run_id or '?'}'s: its sha256 differs from the one "
            "the run recorded (another run or a copy replaced it); retrain the run "
            "(`seqlab train ... --force`)")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, corrupt or foreign file: torch raises many kinds
        raise ValueError(f"{path} is not a readable seqlab checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a seqlab checkpoint ({CHECKPOINT_FORMAT})")
    model = StackedRNN(ModelConfig(**payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return Checkpoint(
        model=model,
        config=TrainConfig.from_dict(payload["config"]),
        scaler=ScalerParams.from_dict(payload["scaler"]),
        feature_names=list(payload["feature_names"]),
        feature_key=str(payload["feature_key"]),
        best_epoch=int(payload["best_epoch"]),
        best_test_loss=float(payload["best_test_loss"]),
    )


def predict_next(checkpoint_path: Path, prices: pl.DataFrame, *,
                 expected_sha256: str | None = None, run_id: str | None = None,
                 ) -> tuple[dt.date, float]:
    """Forecast close ``horizon`` days after the latest price (the next day by default).

    Returns (target date, predicted close in USD), using the checkpoint's own scaler;
    ``expected_sha256``: refuse a file that is not the run's (see :func:`load_checkpoint`).
    """
    checkpoint = load_checkpoint(checkpoint_path, expected_sha256=expected_sha256, run_id=run_id)
    window, last_date = build_latest_window(
        prices, checkpoint.feature_names, checkpoint.scaler, checkpoint.config.lookback
    )
    with torch.no_grad():
        scaled = checkpoint.model(torch.from_numpy(window)).numpy()  # (1,)
    close = checkpoint.scaler.inverse_column(scaled, TARGET_COLUMN)[0]
    target = last_date + np.timedelta64(checkpoint.config.horizon, "D")
    return target.astype(dt.date), float(close)
