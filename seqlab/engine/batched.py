"""Batched-weights packing: K same-architecture configs trained as one model with a K axis.

Stream packing (:mod:`seqlab.engine.packing`) overlaps K small graphs; here K configs
that share an architecture become one :class:`BatchedStackedRNN` whose parameters carry a
leading K dimension, so every kernel (input projection, recurrent ``baddbmm``, norms,
head, Adam) does all K models' work in one launch.

How each member stays equal to its own eager run (``seqlab.engine.train.train_config``):

* Init: member k's :class:`StackedRNN` is built after ``torch.manual_seed(seed_k)`` exactly
  as the eager engine builds it, then its weights are copied into slice k.
* Batch order: member k owns a generator seeded with ``seed_k`` and draws
  ``torch.randperm`` from it each epoch, so it sees the same windows as eager.
* Gradients: the loss is the *sum* of the members' mean squared errors; no parameter
  slice is shared, so slice k's gradient is member k's own eager gradient.
* Clipping is per member (the norm over its slices of all gradients); Adam is
  elementwise, so one Adam over the stacked tensors equals K separate ones.

The cells are written out with torch's gate equations and gate order (LSTM i,f,g,o;
GRU r,z,n), so results match ``nn.LSTM``/``nn.GRU``/``nn.RNN`` up to float reassociation,
not bit for bit. On CUDA the step is captured as a graph (the patterns of
:class:`seqlab.engine.graphed.GraphedRun`); elsewhere the same static-buffer steps run
eagerly. All members train until the last one stops; a member that stopped early keeps
being stepped but its history is closed (its best state was saved when it was best).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import torch

from seqlab.engine.config import TrainConfig
from seqlab.engine.graphed import (
    CapturedRun,
    CaptureError,
    DeviceData,
    capture_blocker,
    make_capturable_optimizer,
)
from seqlab.engine.packing import PackEpochCallback, pack_key
from seqlab.engine.recording import EVAL_CHUNK, RunHistory, assemble_result
from seqlab.engine.result import TrainResult
from seqlab.engine.runtime import configure_determinism, resolve_device, seeded_model
from seqlab.engine.train import batch_plan, folds_single_window
from seqlab.features.windows import build_features
from seqlab.models.batched import BatchedStackedRNN

# Beyond the pack key, what batched members must share: the architecture (one model), the
# features (one copy of the windows) and lr/weight decay (one Adam over stacked tensors).
BATCH_FIELDS = ("cell", "depth", "hidden", "norm", "dropout", "feature_set", "scaler",
                "lr", "weight_decay")


class MemberState:
    """Member k of a batched model as seen by :meth:`RunHistory.record` (its state dict only)."""

    def __init__(self, model: BatchedStackedRNN, k: int) -> None:
        self.model, self.k = model, k

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.member_state_dict(self.k)


@torch.no_grad()
def predict_batched(model: BatchedStackedRNN, X: torch.Tensor) -> torch.Tensor:
    """All members' eval-mode outputs (K, N) for shared windows X (N, T, F), in chunks.

    A chunk holds ``EVAL_CHUNK // K`` windows per member, so its activations take about
    as much memory as one model's chunk in :func:`predict_scaled`.
    """
    was_training = model.training
    model.eval()
    chunk = max(1, EVAL_CHUNK // model.k)
    out = [model(X[i : i + chunk].expand(model.k, -1, -1, -1))
           for i in range(0, X.shape[0], chunk)]
    model.train(was_training)
    return torch.cat(out, dim=1) if out else X.new_zeros(model.k, 0)


def member_mse(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each member's mean squared error (K,) for predictions (K, B) and targets (K, B) or (B,)."""
    return (predicted - target).square().mean(dim=1)


# --- grouping -----------------------------------------------------------------------------

def batchable_key(config: TrainConfig) -> tuple:
    """What must match for configs to train as one batched model: pack key + :data:`BATCH_FIELDS`."""
    return pack_key(config) + tuple(getattr(config, name) for name in BATCH_FIELDS)


def batch_mismatch(configs: Sequence[TrainConfig]) -> list[str]:
    """Names of the fields whose differences keep ``configs`` from one batched pack."""
    first = configs[0]
    names = []
    for field in dataclasses.fields(TrainConfig):
        values = {getattr(c, field.name) for c in configs}
        if len(values) < 2:
            continue
        for value in values:
            try:
                changed = dataclasses.replace(first, **{field.name: value})
            except ValueError:  # the value is invalid next to first's other fields: it matters
                names.append(field.name)
                break
            if batchable_key(changed) != batchable_key(first):
                names.append(field.name)
                break
    return names


# --- training -----------------------------------------------------------------------------

class BatchedRun(CapturedRun):
    """A batched pack's model, optimizer, per-member batch orders and captured graphs."""

    def __init__(self, configs: Sequence[TrainConfig], n_features: int, tensors: DeviceData,
                 device: torch.device) -> None:
        self.configs, self.tensors, self.device = list(configs), tensors, device
        self.members = [seeded_model(c.model_config(n_features), c.seed, device)  # as eager
                        for c in self.configs]
        self.model = BatchedStackedRNN.from_models(self.members)
        self.optimizer, self.optimizer_kind = make_capturable_optimizer(self.model, self.configs[0])
        self.generators = [torch.Generator(device=device).manual_seed(c.seed) for c in self.configs]
        clips = [c.grad_clip for c in self.configs]
        self.clipping = any(clip is not None for clip in clips)
        self.max_norm = torch.tensor([clip or 1.0 for clip in clips], device=device)
        self.clipped = torch.tensor([clip is not None for clip in clips], device=device)
        k = len(self.configs)
        n, lookback, features = tensors.X_train.shape
        batch = self.configs[0].batch_size
        self.k, self.n, self.batch = k, n, batch
        self.n_full, self.remainder = batch_plan(
            n, batch, fold_single=folds_single_window(self.configs[0].norm, lookback))
        self.order = torch.zeros(k, n, dtype=torch.long, device=device)  # each member's permutation
        self.order_full = self.order[:, : self.n_full * batch].view(k, self.n_full, batch)
        self.order_rem = self.order[:, self.n_full * batch:]  # (K, R)
        self.step_counter = torch.zeros(1, dtype=torch.long, device=device)  # full batches done
        self.loss_sum = torch.zeros(k, device=device)  # per member, sample-weighted
        self.X_batch = torch.zeros(k, batch, lookback, features, device=device)
        self.y_batch = torch.zeros(k, batch, device=device)
        self.X_rem = torch.zeros(k, self.remainder, lookback, features, device=device)
        self.y_rem = torch.zeros(k, self.remainder, device=device)
        self.graph_full: torch.cuda.CUDAGraph | None = None
        self.graph_rem: torch.cuda.CUDAGraph | None = None
        self.graph_eval: torch.cuda.CUDAGraph | None = None
        self.eval_losses: torch.Tensor | None = None  # (K, 1|2): test[, val]
        self.captured = False

    def _step(self, full: bool) -> None:
        """One training step of all members on the static buffers."""
        if full:
            idx = self.order_full.index_select(1, self.step_counter).view(self.k, self.batch)
            xb, yb, size = self.X_batch, self.y_batch, self.batch
        else:
            idx, xb, yb, size = self.order_rem, self.X_rem, self.y_rem, self.remainder
        flat = idx.reshape(-1)
        xb.copy_(self.tensors.X_train.index_select(0, flat).view(xb.shape))
        yb.copy_(self.tensors.y_train.index_select(0, flat).view(yb.shape))
        losses = member_mse(self.model(xb), yb)  # (K,)
        losses.sum().backward()  # slice k's gradient is member k's own
        if self.clipping:
            self._clip_per_member()
        self.optimizer.step()
        with torch.no_grad():
            self.loss_sum.add_(losses.detach() * size)
            if full:
                self.step_counter.add_(1)

    @torch.no_grad()
    def _clip_per_member(self) -> None:
        """``clip_grad_norm_`` for each member over its slices of the stacked gradients."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        norms = torch.stack([torch.linalg.vector_norm(g.reshape(self.k, -1), dim=1) for g in grads])
        total = torch.linalg.vector_norm(norms, dim=0)  # (K,)
        coef = (self.max_norm / (total + 1e-6)).clamp(max=1.0)  # as nn.utils.clip_grad_norm_
        coef = torch.where(self.clipped, coef, torch.ones_like(coef))
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))

    def _evaluate(self) -> torch.Tensor:
        t = self.tensors
        losses = [member_mse(predict_batched(self.model, t.X_test), t.y_test)]
        if t.X_val.shape[0] > 0:
            losses.append(member_mse(predict_batched(self.model, t.X_val), t.y_val))
        return torch.stack(losses, dim=1)  # (K, 1|2)

    def begin_epoch(self) -> None:
        """Draw every member's batch order from its own generator and reset the counters."""
        for k, generator in enumerate(self.generators):
            self.order[k].copy_(torch.randperm(self.n, generator=generator, device=self.device))
        self.step_counter.zero_()
        self.loss_sum.zero_()


def train_pack_batched(
    configs: Sequence[TrainConfig],
    prices: pl.DataFrame,
    *,
    checkpoint_dir: Path | None = None,
    on_epoch: PackEpochCallback | None = None,
) -> list[TrainResult]:
    """Train same-architecture configs as one batched model; one :class:`TrainResult` each.

    Raises ``ValueError`` naming the fields that differ when the configs do not share
    :func:`batchable_key`, or when dropout sits between layers. ``determinism["graph"]`` is
    ``"captured"`` or ``"eager-batched: <reason>"``; ``epoch_seconds`` is the pack's time.
    """
    configs = list(configs)
    if not configs:
        return []
    differing = batch_mismatch(configs)
    if differing:
        raise ValueError(f"configs in one batched pack must share {', '.join(differing)}; "
                         "use plan_packs(configs, size, key=batchable_key) first")
    started = time.perf_counter()
    device = resolve_device(configs[0].device)
    data = build_features(prices, configs[0].feature_spec())
    determinism = configure_determinism(device)
    tensors = DeviceData.from_features(data, device)
    run, graph = _prepared_run(configs, data.n_features, tensors, device)
    histories = [RunHistory(c, has_val=tensors.X_val.shape[0] > 0) for c in configs]
    views = [MemberState(run.model, k) for k in range(run.k)]
    active = list(range(run.k))
    while active:
        epoch_start = time.perf_counter()
        rows = run.run_epoch().tolist()  # the pack's single host sync per epoch
        seconds = time.perf_counter() - epoch_start
        still = []
        for k in active:
            callback = None if on_epoch is None else (lambda r, k=k: on_epoch(k, r))
            if histories[k].record(rows[k], seconds, views[k], callback):
                still.append(k)
        active = still
    results = []
    for k, (config, member) in enumerate(zip(configs, run.members, strict=True)):
        member.load_state_dict(run.model.member_state_dict(k))  # the last state, if none was best
        record = {**determinism, "seed": config.seed, "graph": graph,
                  "optimizer": run.optimizer_kind,
                  "pack": {"size": run.k, "index": k, "mode": "batched"}}
        results.append(assemble_result(config, data, member, histories[k], tensors.X_test,
                                       device=device, determinism=record, started=started,
                                       checkpoint_dir=checkpoint_dir))
    return results


def _prepared_run(configs: list[TrainConfig], n_features: int, tensors: DeviceData,
                  device: torch.device) -> tuple[BatchedRun, str]:
    """A run ready for epoch 1: captured on CUDA, else eager; with its ``graph`` record."""
    reason = capture_blocker(configs[0], device)
    if reason is None:
        run = BatchedRun(configs, n_features, tensors, device)
        try:
            run.capture()
            return run, "captured"
        except CaptureError as error:
            reason = f"capture failed: {error}"
            del run  # rebuilt below: a failed capture may leave the state half-stepped
    run = BatchedRun(configs, n_features, tensors, device)
    run.prepare(use_graphs=False)
    return run, f"eager-batched: {reason}"
