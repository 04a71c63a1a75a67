"""CUDA-graph training: one config's whole training step captured once, replayed per batch.

Tiny recurrent models are launch-bound on a GPU: an eager step is hundreds of kernel
launches driven from Python. Here forward, MSE, backward, gradient clipping and a
capturable Adam step are captured into one CUDA graph (the whole-network recipe of
https://pytorch.org/docs/stable/notes/cuda.html#whole-network-capture) and replayed.

How it stays equal to the eager engine (``seqlab.engine.train``):

* Same init and batch order: the model is built after ``torch.manual_seed(seed)`` and
  each epoch's order is ``batch_orders(seed, epoch)``, as in eager; the permutation is copied into a static buffer and the graph picks its batch through a
  device-side step counter, so a replay needs no host work besides the launch.
* The last partial batch gets its own graph (static buffers of the remainder size), so
  it takes an optimizer step with its own mean loss, exactly as eager does.
* Warm-up steps (needed before capture) really train; the model, BatchNorm buffers and
  optimizer state are restored in place afterwards, so epoch 1 starts from the same state.
* The train loss is summed on the device (sample-weighted); test/val losses come from a
  captured no-grad evaluation graph; one host read per epoch.

Capture is refused (and the run trains eagerly, recorded in ``determinism["graph"]``) off
CUDA, with dropout between layers (replays draw dropout masks from a different RNG
stream than eager, so results would not match), or when capture raises.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

import seqlab.engine.train as eager_engine
from seqlab.engine.captured import (
    CapturedRun,
    CaptureError,
    DeviceData,
    capture_blocker,
    make_capturable_optimizer,
)
from seqlab.engine.config import TrainConfig
from seqlab.engine.recording import RunHistory, assemble_result
from seqlab.engine.result import EpochRecord, TrainResult
from seqlab.engine.runtime import configure_determinism, resolve_device, seeded_model
from seqlab.engine.train import predict_scaled, train_config
from seqlab.features.windows import build_features


class GraphedRun(CapturedRun):
    """One config's model, optimizer and captured step/eval graphs on one CUDA device."""

    def __init__(self, config: TrainConfig, n_features: int, tensors: DeviceData,
                 device: torch.device) -> None:
        self.config, self.tensors, self.device = config, tensors, device
        self.model = seeded_model(config.model_config(n_features), config.seed, device)  # as eager
        self.optimizer, self.optimizer_kind = make_capturable_optimizer(self.model, config)
        self.seed = torch.tensor([config.seed], device=device)  # batch order, as in eager
        self.epoch = 0
        n, lookback, features = tensors.X_train.shape
        batch = config.batch_size
        self.n, self.batch = n, batch
        self.n_full, self.remainder = eager_engine.batch_plan(
            n, batch, fold_single=eager_engine.folds_single_window(config.norm, lookback))
        self.order = torch.zeros(n, dtype=torch.long, device=device)  # this epoch's permutation
        self.order_full = self.order[: self.n_full * batch].view(self.n_full, batch)
        self.order_rem = self.order[self.n_full * batch:]
        self.step_counter = torch.zeros(1, dtype=torch.long, device=device)  # full batches done
        self.loss_sum = torch.zeros((), device=device)  # sample-weighted train loss
        self.X_batch = torch.zeros(batch, lookback, features, device=device)
        self.y_batch = torch.zeros(batch, device=device)
        self.X_rem = torch.zeros(self.remainder, lookback, features, device=device)
        self.y_rem = torch.zeros(self.remainder, device=device)
        self.graph_full: torch.cuda.CUDAGraph | None = None
        self.graph_rem: torch.cuda.CUDAGraph | None = None
        self.graph_eval: torch.cuda.CUDAGraph | None = None
        self.eval_losses: torch.Tensor | None = None  # (1,) or (2,): test[, val] from graph_eval
        self.captured = False

    def _step(self, full: bool) -> None:
        """One training step on the static buffers (run eagerly in warm-up, then captured)."""
        if full:
            idx = self.order_full.index_select(0, self.step_counter).view(-1)  # (B,)
            xb, yb, size = self.X_batch, self.y_batch, self.batch
        else:
            idx, xb, yb, size = self.order_rem, self.X_rem, self.y_rem, self.remainder
        torch.index_select(self.tensors.X_train, 0, idx, out=xb)  # straight into the buffer
        torch.index_select(self.tensors.y_train, 0, idx, out=yb)
        loss = F.mse_loss(self.model(xb), yb)
        loss.backward()
        if self.config.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip, foreach=True)
        self.optimizer.step()
        with torch.no_grad():
            self.loss_sum.add_(loss.detach() * size)
            if full:
                self.step_counter.add_(1)

    def _evaluate(self) -> torch.Tensor:
        t = self.tensors
        losses = [F.mse_loss(predict_scaled(self.model, t.X_test), t.y_test)]
        if t.X_val.shape[0] > 0:
            losses.append(F.mse_loss(predict_scaled(self.model, t.X_val), t.y_val))
        return torch.stack(losses)

    def begin_epoch(self) -> None:
        """This epoch's batch order (as eager's) and the counters reset."""
        self.order.copy_(eager_engine.batch_orders(self.seed, self.epoch, self.n)[0])
        self.epoch += 1
        self.step_counter.zero_()
        self.loss_sum.zero_()


def train_eager_fallback(config: TrainConfig, prices: pl.DataFrame, reason: str, *,
                         checkpoint_dir: Path | None = None,
                         on_epoch: Callable[[EpochRecord], None] | None = None) -> TrainResult:
    """The eager engine, with why no graph was used recorded on the result."""
    result = train_config(config, prices, checkpoint_dir=checkpoint_dir, on_epoch=on_epoch)
    result.determinism["graph"] = f"eager-fallback: {reason}"
    return result


def train_config_graphed(
    config: TrainConfig,
    prices: pl.DataFrame,
    *,
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainResult:
    """Like :func:`seqlab.engine.train.train_config`, with the step replayed as a CUDA graph.

    Falls back to the eager engine where capture is impossible; ``determinism["graph"]``
    is ``"captured"`` or ``"eager-fallback: <reason>"``.
    """
    started = time.perf_counter()
    device = resolve_device(config.device)
    blocker = capture_blocker(config, device)
    if blocker is not None:
        return train_eager_fallback(config, prices, blocker, checkpoint_dir=checkpoint_dir,
                                    on_epoch=on_epoch)
    data = build_features(prices, config.feature_spec())
    determinism = configure_determinism(device)
    determinism["seed"] = config.seed
    tensors = DeviceData.from_features(data, device)
    run = GraphedRun(config, data.n_features, tensors, device)
    try:
        run.capture()
    except CaptureError as error:
        del run
        return train_eager_fallback(config, prices, f"capture failed: {error}",
                                    checkpoint_dir=checkpoint_dir, on_epoch=on_epoch)
    determinism["graph"] = "captured"
    determinism["optimizer"] = run.optimizer_kind
    history = RunHistory(config, has_val=tensors.X_val.shape[0] > 0)
    while True:
        epoch_start = time.perf_counter()
        values = run.run_epoch().tolist()  # the epoch's single host sync
        if not history.record(values, time.perf_counter() - epoch_start, run.model, on_epoch):
            break
    return assemble_result(config, data, run.model, history, tensors.X_test, device=device,
                           determinism=determinism, started=started, checkpoint_dir=checkpoint_dir)


def train_on_device(
    config: TrainConfig,
    prices: pl.DataFrame,
    *,
    checkpoint_dir: Path | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainResult:
    """The engine a single run should use: CUDA graphs on a GPU, the eager engine elsewhere."""
    if resolve_device(config.device).type == "cuda":
        return train_config_graphed(config, prices, checkpoint_dir=checkpoint_dir, on_epoch=on_epoch)
    # Looked up at call time, so a test (or a profiler) that patches the eager engine sees it.
    return eager_engine.train_config(config, prices, checkpoint_dir=checkpoint_dir, on_epoch=on_epoch)
