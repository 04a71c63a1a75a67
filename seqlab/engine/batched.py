"""Batched-weights packing: K same-architecture configs trained as one model with a K axis.

Stream packing (:mod:`seqlab.engine.stream_pack`) overlaps K small graphs; here K configs
that share an architecture become one :class:`BatchedStackedRNN` whose parameters carry a
leading K dimension, so every kernel (input projection, recurrent ``baddbmm``, norms,
head, Adam) does all K models' work in one launch.

How each member stays equal to its own eager run (``seqlab.engine.train.train_config``):

* Init: member k's :class:`StackedRNN` is built after ``torch.manual_seed(seed_k)`` exactly
  as the eager engine builds it, then its weights are copied into slice k.
* Batch order: member k's is ``batch_orders(seed_k, epoch)`` each epoch (all K in one
  sort), so it sees the same windows as eager.
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

from seqlab.engine.captured import (
    DeviceData,
    capture_blocker,
    make_capturable_optimizer,
)
from seqlab.engine.config import TrainConfig
from seqlab.engine.lockstep import LockstepRun, member_mse, prepared_run, train_members
from seqlab.engine.pack_plan import PackEpochCallback, pack_key
from seqlab.engine.recording import EVAL_CHUNK, RunHistory, assemble_result
from seqlab.engine.result import TrainResult
from seqlab.engine.runtime import configure_determinism, resolve_device, seeded_model
from seqlab.features.windows import build_features
from seqlab.models.batched import BatchedStackedRNN

# Beyond the pack key, what batched members must share: the architecture (one model), the
# features (one copy of the windows) and lr/weight decay (one Adam over stacked tensors).
BATCH_FIELDS = ("cell", "depth", "hidden", "norm", "dropout", "feature_set", "scaler",
                "lr", "weight_decay")


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

class BatchedRun(LockstepRun):
    """A batched pack's model, optimizer, per-member batch orders and captured graphs."""

    def __init__(self, configs: Sequence[TrainConfig], n_features: int, tensors: DeviceData,
                 device: torch.device) -> None:
        self.configs, self.tensors = list(configs), tensors
        self.members = [seeded_model(c.model_config(n_features), c.seed, device)  # as eager
                        for c in self.configs]
        self.model = BatchedStackedRNN.from_models(self.members)
        self.optimizer, self.optimizer_kind = make_capturable_optimizer(self.model, self.configs[0])
        k = len(self.configs)
        everyone = torch.arange(k)  # every stacked tensor: row k is member k's
        self.setup(self.configs, tensors.X_train, tensors.y_train, tensors.X_train.shape[0],
                   torch.zeros(k, dtype=torch.long),
                   dict.fromkeys(self.model.state_dict(), everyone), device)

    def _evaluate(self) -> torch.Tensor:
        t = self.tensors
        losses = [member_mse(predict_batched(self.model, t.X_test), t.y_test)]
        if t.X_val.shape[0] > 0:
            losses.append(member_mse(predict_batched(self.model, t.X_val), t.y_val))
        return torch.stack(losses, dim=1)  # (K, 1|2)


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
    run, graph = prepared_run(lambda: BatchedRun(configs, data.n_features, tensors, device),
                              capture_blocker(configs[0], device), "batched")
    histories = [RunHistory(c, has_val=tensors.X_val.shape[0] > 0) for c in configs]
    train_members(run, histories, on_epoch, range(run.k))
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
