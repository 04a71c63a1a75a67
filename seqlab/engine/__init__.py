"""Training engine: configs, the device-resident training loop, metrics and checkpoints."""

from __future__ import annotations

from seqlab.engine.checkpoint import Checkpoint, load_checkpoint, predict_next, save_checkpoint
from seqlab.engine.config import TrainConfig
from seqlab.engine.metrics import forecast_metrics
from seqlab.engine.result import EpochRecord, TrainResult
from seqlab.engine.runtime import configure_determinism, resolve_device, tune_malloc
from seqlab.engine.train import make_optimizer, predict_scaled, train_config, train_one_epoch

__all__ = [
    "Checkpoint",
    "EpochRecord",
    "TrainConfig",
    "TrainResult",
    "configure_determinism",
    "forecast_metrics",
    "load_checkpoint",
    "make_optimizer",
    "predict_next",
    "predict_scaled",
    "resolve_device",
    "save_checkpoint",
    "train_config",
    "train_one_epoch",
    "tune_malloc",
]
