"""The training engine: one config + prices in, one :class:`TrainResult` out.

Built for speed on small recurrent models, where per-step overhead dominates: all
windows live on the device as tensors, a seeded permutation picks each mini-batch with
``index_select`` (no DataLoader, no per-batch copies), and the running loss stays on
the device, read once per epoch together with the evaluation losses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

from seqlab.engine.checkpoint import save_checkpoint
from seqlab.engine.config import TrainConfig
from seqlab.engine.metrics import forecast_metrics
from seqlab.engine.result import EpochRecord, TrainResult
from seqlab.engine.runtime import configure_determinism, resolve_device
from seqlab.features.sets import TARGET_COLUMN
from seqlab.features.windows import build_features
from seqlab.models.rnn import StackedRNN, count_parameters

EVAL_CHUNK = 8192  # windows per evaluation forward pass


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Adam:
    """Adam with the fused kernel: one pass per parameter tensor instead of a dozen ops.

    Measured on 2 CPU threads it cut epochs by up to 13% for these small models (never
    measurably slower); on CUDA it is one launch per step. Fused Adam exists for both
    device types, so ``device`` does not change the choice today.
    """
    return torch.optim.Adam(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
    )


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    generator: torch.Generator,
    grad_clip: float | None = None,
) -> torch.Tensor:
    """One pass over shuffled mini-batches; returns the sample-weighted mean loss.

    The result is a 0-d tensor on the device: nothing here waits for the device.
    """
    model.train()
    n = X.shape[0]
    order = torch.randperm(n, generator=generator, device=X.device)  # (N,)
    total = torch.zeros((), device=X.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]  # (B,)
        xb = X.index_select(0, idx)  # (B, T, F)
        yb = y.index_select(0, idx)  # (B,)
        loss = F.mse_loss(model(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        total += loss.detach() * idx.numel()
    return total / n


@torch.no_grad()
def predict_scaled(model: nn.Module, X: torch.Tensor) -> torch.Tensor:
    """Model outputs (N,) for windows (N, T, F) in eval mode, in a few large batches."""
    was_training = model.training
    model.eval()
    out = [model(X[i : i + EVAL_CHUNK]) for i in range(0, X.shape[0], EVAL_CHUNK)]
    model.train(was_training)
    return torch.cat(out) if out else X.new_zeros(0)


def _clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_config(
    config: TrainConfig,
    prices: pl.DataFrame,
    *,
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainResult:
    """Train one configuration on one symbol's prices and score it against persistence.

    A loss that turns NaN/inf ends the run with ``status="diverged"`` (never an exception).
    With ``checkpoint_dir`` the best epoch's model is saved as ``<run_key>.pt``.
    """
    started = time.perf_counter()
    data = build_features(prices, config.feature_spec())
    device = resolve_device(config.device)
    determinism = configure_determinism(device)
    determinism["seed"] = config.seed

    torch.manual_seed(config.seed)  # model init and dropout
    model = StackedRNN(config.model_config(data.n_features)).to(device)
    optimizer = make_optimizer(model, config, device)
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)  # batch order

    def on_device(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(device)

    X_train, y_train = on_device(data.X_train), on_device(data.y_train)
    X_val, y_val = on_device(data.X_val), on_device(data.y_val)
    X_test, y_test = on_device(data.X_test), on_device(data.y_test)
    has_val = X_val.shape[0] > 0

    history: dict[str, list[float]] = {"train": [], "test": [], "val": [], "seconds": []}
    status, diverged_epoch, stopped_early = "ok", None, False
    best_score, best_epoch, best_state = math.inf, None, None
    stale = 0
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        train_loss = train_one_epoch(
            model, optimizer, X_train, y_train, batch_size=config.batch_size,
            generator=generator, grad_clip=config.grad_clip,
        )
        losses = [train_loss, F.mse_loss(predict_scaled(model, X_test), y_test)]
        if has_val:
            losses.append(F.mse_loss(predict_scaled(model, X_val), y_val))
        values = torch.stack(losses).tolist()  # the epoch's single host sync
        seconds = time.perf_counter() - epoch_start
        val_loss = values[2] if has_val else None
        history["train"].append(values[0])
        history["test"].append(values[1])
        if has_val:
            history["val"].append(val_loss)
        history["seconds"].append(seconds)
        if on_epoch is not None:
            on_epoch(EpochRecord(epoch, values[0], values[1], val_loss, seconds))
        if not all(math.isfinite(v) for v in values):
            status, diverged_epoch = "diverged", epoch
            break
        score = val_loss if has_val else values[1]
        if score < best_score:
            best_score, best_epoch, best_state, stale = score, epoch, _clone_state(model), 0
        else:
            stale += 1
            if config.early_stopping_patience is not None and stale >= config.early_stopping_patience:
                stopped_early = True
                break

    actual, last_close = data.test_actual_usd, data.test_last_close_usd
    baseline = forecast_metrics(actual, last_close, last_close)
    scored: dict[str, float | None] = dict.fromkeys(baseline)
    predicted = np.full(actual.shape, np.nan)
    checkpoint_path = None
    if best_state is not None:
        model.load_state_dict(best_state)
        predicted = data.scaler.inverse_column(
            predict_scaled(model, X_test).cpu().numpy(), TARGET_COLUMN
        )
        scored = forecast_metrics(actual, predicted, last_close)
        if checkpoint_dir is not None:
            checkpoint_path = str(
                save_checkpoint(
                    Path(checkpoint_dir) / f"{config.run_key()}.pt", model, config, data,
                    best_epoch=best_epoch, best_test_loss=history["test"][best_epoch - 1],
                )
            )

    return TrainResult(
        run_key=config.run_key(),
        config=config.to_dict(),
        status=status,
        diverged_epoch=diverged_epoch,
        epochs_run=len(history["train"]),
        stopped_early=stopped_early,
        train_loss=history["train"],
        test_loss=history["test"],
        val_loss=history["val"],
        epoch_seconds=history["seconds"],
        final_test_loss=history["test"][-1],
        best_test_loss=history["test"][best_epoch - 1] if best_epoch else None,
        best_epoch=best_epoch,
        selected_on="val" if has_val else "test",
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
        n_train=int(X_train.shape[0]),
        n_val=int(X_val.shape[0]),
        n_test=int(X_test.shape[0]),
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
