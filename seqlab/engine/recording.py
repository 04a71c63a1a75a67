"""Per-epoch bookkeeping and result assembly shared by the graphed and packed engines.

The eager engine (``seqlab.engine.train.train_config``), the graphed engine and packs all
use them, so every run is judged, checkpointed and reported the same way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqlab.engine.checkpoint import save_checkpoint
from seqlab.engine.config import TrainConfig
from seqlab.engine.metrics import forecast_metrics
from seqlab.engine.result import EpochRecord, TrainResult
from seqlab.features.sets import TARGET_COLUMN
from seqlab.features.windows import FeatureData
from seqlab.models.rnn import count_parameters

EVAL_CHUNK = 8192  # windows per evaluation forward pass


@torch.no_grad()
def predict_scaled(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """Model outputs (N,) for windows (N, T, F) in eval mode, in a few large batches."""
    was_training = model.training
    model.eval()
    out = [model(X[i : i + EVAL_CHUNK]) for i in range(0, X.shape[0], EVAL_CHUNK)]
    model.train(was_training)
    return torch.cat(out) if out else X.new_zeros(0)


@dataclass
class RunHistory:
    """Losses, timings, best epoch and stop reason of one run, fed one epoch at a time."""

    config: TrainConfig
    has_val: bool
    train: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    status: str = "ok"
    diverged_epoch: int | None = None
    stopped_early: bool = False
    best_score: float = math.inf
    best_epoch: int | None = None
    best_state: dict[str, torch.Tensor] | None = None
    stale: int = 0
    finished: bool = False

    def record(
        self,
        values: list[float],
        seconds: float,
        model: nn.Module,
        on_epoch: Callable[[EpochRecord], None] | None = None,
    ) -> bool:
        """Add one epoch's [train, test(, val)] losses; returns False when the run must stop."""
        epoch = len(self.train) + 1
        val_loss = values[2] if self.has_val else None
        self.train.append(values[0])
        self.test.append(values[1])
        if self.has_val:
            self.val.append(val_loss)
        self.seconds.append(seconds)
        if on_epoch is not None:
            on_epoch(EpochRecord(epoch, values[0], values[1], val_loss, seconds))
        if not all(math.isfinite(v) for v in values):
            self.status, self.diverged_epoch, self.finished = "diverged", epoch, True
            return False
        # Selection never reads the test loss: the lowest validation loss, or, with no
        # validation split, simply the latest finite epoch.
        score = val_loss if self.has_val else -float(epoch)
        if score < self.best_score:
            self.best_score, self.best_epoch, self.stale = score, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.stale += 1
            patience = self.config.early_stopping_patience
            if patience is not None and self.stale >= patience:
                self.stopped_early, self.finished = True, True
                return False
        if epoch >= self.config.epochs:
            self.finished = True
        return not self.finished


def assemble_result(
    config: TrainConfig,
    data: FeatureData,
    model: nn.Module,
    history: RunHistory,
    X_test: torch.Tensor,
    *,
    device: torch.device,
    determinism: dict,
    started: float,
    checkpoint_dir: Path | None = None,
) -> TrainResult:
    """Score the best epoch's model against persistence and build the :class:`TrainResult`.

    Loads the best state into ``model`` in place (parameters keep their storage, so a
    captured graph that still references them is not invalidated).
    """
    actual, last_close = data.test_actual_usd, data.test_last_close_usd
    baseline = forecast_metrics(actual, last_close, last_close)
    scored: dict[str, float | None] = dict.fromkeys(baseline)
    predicted = np.full(actual.shape, np.nan)
    checkpoint_path = None
    best_epoch = history.best_epoch
    if history.best_state is not None:
        model.load_state_dict(history.best_state)
        predicted = data.scaler.inverse_column(
            predict_scaled(model, X_test).cpu().numpy(), TARGET_COLUMN
        )
        scored = forecast_metrics(actual, predicted, last_close)
        if checkpoint_dir is not None:
            checkpoint_path = str(
                save_checkpoint(
                    Path(checkpoint_dir) / f"{config.run_key()}.pt", model, config, data,
                    best_epoch=best_epoch, best_test_loss=history.test[best_epoch - 1],
                )
            )
    return TrainResult(
        run_key=config.run_key(),
        config=config.to_dict(),
        status=history.status,
        diverged_epoch=history.diverged_epoch,
        epochs_run=len(history.train),
        stopped_early=history.stopped_early,
        train_loss=history.train,
        test_loss=history.test,
        val_loss=history.val,
        epoch_seconds=history.seconds,
        final_test_loss=history.test[-1],
        best_test_loss=history.test[best_epoch - 1] if best_epoch else None,
        best_val_loss=history.val[best_epoch - 1] if best_epoch and history.has_val else None,
        best_epoch=best_epoch,
        selected_on="validation" if history.has_val else "last_epoch",
        test_rmse_usd=scored["rmse_usd"],
        test_mae_usd=scored["mae_usd"],
        test_mape_pct=scored["mape_pct"],
        test_directional_accuracy=scored["directional_accuracy"],
        baseline_rmse_usd=baseline["rmse_usd"],
        baseline_mae_usd=baseline["mae_usd"],
        baseline_mape_pct=baseline["mape_pct"],
        baseline_directional_accuracy=baseline["directional_accuracy"],
        predictions={
            "date": [str(d) for d in data.test_dates],
            "actual_usd": actual.tolist(),
            "predicted_usd": predicted.tolist(),
            "baseline_usd": last_close.tolist(),
        },
        n_train=int(data.X_train.shape[0]),
        n_val=int(data.X_val.shape[0]),
        n_test=int(data.X_test.shape[0]),
        n_parameters=count_parameters(model),
        feature_names=list(data.feature_names),
        feature_key=data.key,
        feature_fingerprint=data.fingerprint,
        scaler=data.scaler.to_dict(),
        device=str(device),
        determinism=determinism,
        torch_version=str(torch.__version__),
        seconds=time.perf_counter() - started,
        checkpoint_path=checkpoint_path,
    )
