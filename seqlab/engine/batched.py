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
from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

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
from seqlab.models.rnn import GATES, ModelConfig, StackedRNN

BN_MOMENTUM, NORM_EPS = 0.1, 1e-5  # nn.BatchNorm1d / nn.LayerNorm defaults
# Beyond the pack key, what batched members must share: the architecture (one model), the
# features (one copy of the windows) and lr/weight decay (one Adam over stacked tensors).
BATCH_FIELDS = ("cell", "depth", "hidden", "norm", "dropout", "feature_set", "scaler",
                "lr", "weight_decay")


# --- the model ----------------------------------------------------------------------------

class BatchedRecurrentLayer(nn.Module):
    """K independent single-layer RNN/LSTM/GRU cells, time-major: (K, T, B, F_in) -> (K, T, B, H)."""

    def __init__(self, cell: str, k: int, n_in: int, hidden: int) -> None:
        super().__init__()
        self.cell, self.hidden = cell, hidden
        rows = GATES[cell] * hidden
        self.weight_ih = nn.Parameter(torch.zeros(k, rows, n_in))
        self.weight_hh = nn.Parameter(torch.zeros(k, rows, hidden))
        self.bias_ih = nn.Parameter(torch.zeros(k, rows))
        self.bias_hh = nn.Parameter(torch.zeros(k, rows))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, t, b, n_in = x.shape
        # All time steps' input projections in one batched matmul.
        projected = torch.baddbmm(self.bias_ih.unsqueeze(1), x.reshape(k, t * b, n_in),
                                  self.weight_ih.transpose(1, 2)).view(k, t, b, -1)
        w_hh_t, b_hh = self.weight_hh.transpose(1, 2), self.bias_hh.unsqueeze(1)
        h = x.new_zeros(k, b, self.hidden)
        c = x.new_zeros(k, b, self.hidden)  # LSTM cell state
        outputs = []
        # unbind, not projected[:, step]: its backward is one stack, where T selects would
        # each scatter into a zeroed copy of the whole projection.
        for step_input in projected.unbind(1):  # plain Python: unrolled into the captured graph
            recurrent = torch.baddbmm(b_hh, h, w_hh_t)  # (K, B, G*H)
            h, c = self._cell(step_input, recurrent, h, c)
            outputs.append(h)
        return torch.stack(outputs, dim=1)  # (K, T, B, H)

    def _cell(self, projected: torch.Tensor, recurrent: torch.Tensor, h: torch.Tensor,
              c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step with torch's equations; returns the new (h, c)."""
        if self.cell == "rnn":
            return torch.tanh(projected + recurrent), c
        if self.cell == "lstm":
            i, f, g, o = (projected + recurrent).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        x_r, x_z, x_n = projected.chunk(3, dim=-1)
        h_r, h_z, h_n = recurrent.chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return (1 - z) * n + z * h, c


class BatchedNorm(nn.Module):
    """K BatchNorm1d (stats over (B, T) per channel) or LayerNorm (over H) modules."""

    def __init__(self, kind: str, k: int, hidden: int) -> None:
        super().__init__()
        self.kind = kind
        self.weight = nn.Parameter(torch.ones(k, hidden))
        self.bias = nn.Parameter(torch.zeros(k, hidden))
        if kind == "batch":
            self.register_buffer("running_mean", torch.zeros(k, hidden))
            self.register_buffer("running_var", torch.ones(k, hidden))
            self.register_buffer("num_batches_tracked", torch.zeros(k, dtype=torch.long))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h (K, T, B, H) -> normalized, same shape."""
        weight, bias = self.weight[:, None, None, :], self.bias[:, None, None, :]
        if self.kind == "layer":
            return F.layer_norm(h, h.shape[-1:], eps=NORM_EPS) * weight + bias
        if self.training:
            var, mean = torch.var_mean(h, dim=(1, 2), correction=0)  # (K, H)
            with torch.no_grad():
                count = h.shape[1] * h.shape[2]
                unbiased = var * (count / max(count - 1, 1))  # torch keeps the unbiased var
                self.running_mean.lerp_(mean, BN_MOMENTUM)
                self.running_var.lerp_(unbiased, BN_MOMENTUM)
                self.num_batches_tracked.add_(1)
        else:
            mean, var = self.running_mean, self.running_var
        scale = torch.rsqrt(var + NORM_EPS)[:, None, None, :]
        return (h - mean[:, None, None, :]) * scale * weight + bias


class BatchedStackedRNN(nn.Module):
    """K copies of one :class:`StackedRNN` architecture, weights stacked along dim 0.

    ``forward`` maps windows (K, B, T, F) to predictions (K, B); member k computes what
    ``StackedRNN`` with member k's weights computes on ``x[k]``. Dropout between layers
    is not supported (its masks could not match eager's RNG stream).
    """

    def __init__(self, config: ModelConfig, k: int) -> None:
        super().__init__()
        if config.dropout > 0 and config.depth > 1:
            raise ValueError(f"batched models need dropout 0 between layers, got {config.dropout}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.config, self.k = config, k
        sizes = [config.n_features] + [config.hidden] * (config.depth - 1)
        self.layers = nn.ModuleList(
            BatchedRecurrentLayer(config.cell, k, n_in, config.hidden) for n_in in sizes)
        self.norms = nn.ModuleList(
            BatchedNorm(config.norm, k, config.hidden) for _ in sizes if config.norm != "none")
        self.head_weight = nn.Parameter(torch.zeros(k, 1, config.hidden))
        self.head_bias = nn.Parameter(torch.zeros(k, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)  # (K, T, B, F): time-major, so each step's slice is one block
        for i, layer in enumerate(self.layers):
            h = layer(h)  # (K, T, B, H)
            if self.norms:
                h = self.norms[i](h)
        last = h[:, -1]  # (K, B, H)
        out = torch.baddbmm(self.head_bias.unsqueeze(1), last, self.head_weight.transpose(1, 2))
        return out.squeeze(-1)  # (K, B, 1) -> (K, B)

    def _member_keys(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(StackedRNN state-dict key, stacked tensor) pairs; member k is ``tensor[k]``."""
        fused = self.config.norm == "none"
        for i, layer in enumerate(self.layers):
            prefix, suffix = ("rnn.", f"_l{i}") if fused else (f"layers.{i}.", "_l0")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                yield f"{prefix}{name}{suffix}", getattr(layer, name)
        for i, norm in enumerate(self.norms):
            for name, tensor in norm.state_dict(keep_vars=True).items():
                yield f"norms.{i}.{name}", tensor
        yield "head.weight", self.head_weight
        yield "head.bias", self.head_bias

    @classmethod
    def from_models(cls, models: Sequence[StackedRNN]) -> BatchedStackedRNN:
        """Stack the weights (and BatchNorm buffers) of same-architecture models."""
        if not models:
            raise ValueError("from_models needs at least one model")
        config = models[0].config
        for model in models[1:]:
            if model.config != config:
                raise ValueError(f"models differ in architecture: {config} vs {model.config}")
        first = next(models[0].parameters())
        batched = cls(config, len(models)).to(device=first.device, dtype=first.dtype)
        states = [model.state_dict() for model in models]
        with torch.no_grad():
            for key, tensor in batched._member_keys():
                tensor.copy_(torch.stack([state[key] for state in states]))
        return batched

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's weights as a state dict loadable into ``StackedRNN(self.config)`` (copies)."""
        if not 0 <= k < self.k:
            raise IndexError(f"member {k} out of range for {self.k} members")
        return {key: tensor.detach()[k].clone() for key, tensor in self._member_keys()}


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
