"""Fused packs: K configs of any cells, depths, norms and feature sets trained as one model.

Where batched packs (:mod:`seqlab.engine.batched`) need one architecture, a fused pack
takes the grid's whole mix: a :class:`seqlab.models.fused.FusedPackModel` runs each layer
index once for all members that have it, its recurrence one persistent Triton kernel per
cell forward and one backward (:mod:`seqlab.models.triton_rnn`). Everything else, the
input projections, norms, head, loss, per-member clipping and one Adam over the stacked
parameters, is batched across members, and on CUDA the whole step is one CUDA graph.

Each member stays equal to its own eager run (``seqlab.engine.train.train_config``), up
to float reassociation, as in batched packs: the same seeded init copied into its rows,
its own seeded batch order, the sum of members' losses (no parameter row is shared, so
row k's gradient is member k's own), clipping per member, elementwise Adam. Members with
different feature sets read their own windows, zero-padded to the widest set.

Where the kernels cannot run (no Triton, not CUDA unless ``TRITON_INTERPRET=1``, a hidden
size the kernels do not tile, windows of different counts), :func:`train_pack_fused`
trains the pack as stream packs instead and records why on every run
(``determinism["fused_refused"]``); fused runs record ``pack.mode = "fused"`` and
``recurrence``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import torch

from seqlab.engine.captured import DeviceData, make_capturable_optimizer
from seqlab.engine.config import TrainConfig
from seqlab.engine.lockstep import LockstepRun, prepared_run, train_members
from seqlab.engine.pack_plan import PackEpochCallback, pack_key
from seqlab.engine.recording import EVAL_CHUNK, RunHistory, assemble_result
from seqlab.engine.result import TrainResult
from seqlab.engine.runtime import configure_determinism, resolve_device, seeded_model
from seqlab.engine.stream_pack import train_pack
from seqlab.engine.train import folds_single_window
from seqlab.features.windows import FeatureData, build_features
from seqlab.models import triton_rnn
from seqlab.models.fused import FusedPackModel

# Beyond the pack key, what fused members must share: the hidden size (one tile shape per
# kernel) and lr / weight decay (one Adam over the stacked tensors).
FUSE_FIELDS = ("hidden", "lr", "weight_decay")
# Windows (all members together) per evaluation pass on a GPU: at K = 216, hidden 64,
# lookback 30 a pass's activations are about 2.5 GB, and the study's ~1,100 test and
# validation windows per member take 4 passes (at 8,192 windows, CPU's budget, 30).
CUDA_EVAL_WINDOWS = 65536


def eval_chunk(n: int, k: int, budget: int, block: int) -> int:
    """Windows per member in one evaluation pass over ``n`` each: at most ``budget`` windows
    for all ``k`` members, whole blocks of ``block`` rows (a kernel program's tile), and
    passes of equal size, so only the last block of the last pass is part-filled."""
    per_pass = max(block, budget // k // block * block)
    passes = -(-n // per_pass)
    return min(per_pass, -(-n // (passes * block)) * block)


def fusable_key(config: TrainConfig) -> tuple:
    """What must match for configs to train in one fused pack."""
    return pack_key(config) + tuple(getattr(config, name) for name in FUSE_FIELDS)


def fused_blocker(configs: Sequence[TrainConfig], device: torch.device) -> str | None:
    """Why these configs cannot train as one fused pack on ``device`` (None: they can)."""
    keys = {fusable_key(c) for c in configs}
    if len(keys) > 1:
        return ("members differ in batch size, lookback, horizon, fractions, epochs, device, "
                "hidden, lr or weight decay")
    for config in configs:
        if config.dropout > 0 and config.depth > 1:
            return f"dropout {config.dropout} between layers (masks would differ from eager)"
    plans = {folds_single_window(c.norm, c.lookback) for c in configs}
    if len(plans) > 1:
        return "BatchNorm members fold a one-window last batch, the others do not"
    return triton_rnn.hidden_unsupported(configs[0].hidden) or triton_rnn.device_unsupported(device)


class PackData:
    """Every member's windows on the device: one padded copy per feature spec, stacked.

    ``X_*`` are (S, N, T, F_max) for S distinct specs, ``y_*`` (S, N); ``spec_of`` (K,)
    names each member's spec. Raises ``ValueError`` when the specs' window counts differ
    (their members could not share batch positions).
    """

    def __init__(self, configs: Sequence[TrainConfig], prices: pl.DataFrame,
                 device: torch.device) -> None:
        specs = list(dict.fromkeys(c.feature_spec() for c in configs))
        self.features: dict = {spec: build_features(prices, spec) for spec in specs}
        counts = {(d.X_train.shape[0], d.X_val.shape[0], d.X_test.shape[0])
                  for d in self.features.values()}
        if len(counts) > 1:
            raise ValueError(f"feature sets give different window counts {sorted(counts)}")
        width = max(d.n_features for d in self.features.values())
        per_spec = [DeviceData.from_features(self.features[s], device) for s in specs]

        def stacked(name: str) -> torch.Tensor:
            parts = [getattr(d, name) for d in per_spec]
            if parts[0].dim() == 3:  # windows: pad the feature axis with zeros
                parts = [torch.nn.functional.pad(p, (0, width - p.shape[-1])) for p in parts]
            return torch.stack(parts)

        self.X_train, self.y_train = stacked("X_train"), stacked("y_train")
        self.X_val, self.y_val = stacked("X_val"), stacked("y_val")
        self.X_test, self.y_test = stacked("X_test"), stacked("y_test")
        self.spec_of = torch.tensor([specs.index(c.feature_spec()) for c in configs],
                                    dtype=torch.long, device=device)
        self.per_spec = dict(zip(specs, per_spec, strict=True))

    def data(self, config: TrainConfig) -> FeatureData:
        return self.features[config.feature_spec()]

    def device_data(self, config: TrainConfig) -> DeviceData:
        return self.per_spec[config.feature_spec()]


class FusedRun(LockstepRun):
    """A fused pack's model, optimizer, per-member batch orders and captured graphs.

    ``configs`` must be sorted by depth (the model's member order).
    """

    def __init__(self, configs: Sequence[TrainConfig], data: PackData, device: torch.device,
                 recurrence) -> None:
        self.configs, self.data = list(configs), data
        self.members = [seeded_model(c.model_config(data.data(c).n_features), c.seed, device)
                        for c in self.configs]  # exactly as the eager engine builds them
        self.model = FusedPackModel([m.config for m in self.members], recurrence).to(device)
        self.model.load_members(self.members)
        self.optimizer, self.optimizer_kind = make_capturable_optimizer(self.model, self.configs[0])
        _, n, lookback, width = data.X_train.shape
        self.setup(self.configs, data.X_train.reshape(-1, lookback, width), data.y_train.reshape(-1),
                   n, data.spec_of * n, self.model.state_members(), device)
        # Test and validation windows of every member, gathered once: (K, N_test + N_val, T, F).
        spec = data.spec_of
        self.X_eval = torch.cat([data.X_test, data.X_val], dim=1).index_select(0, spec)
        self.y_eval = torch.cat([data.y_test, data.y_val], dim=1).index_select(0, spec)
        self.n_test, n_eval = data.X_test.shape[1], self.X_eval.shape[1]
        budget = CUDA_EVAL_WINDOWS if device.type == "cuda" else EVAL_CHUNK
        block = triton_rnn.launch_options(self.model.hidden)["BLOCK_B"]
        self.eval_chunk = eval_chunk(n_eval, self.k, budget, block)

    @torch.no_grad()
    def _evaluate(self) -> torch.Tensor:
        """Every member's test[, val] loss (K, 1|2): eval-mode passes over whole blocks."""
        was_training = self.model.training
        self.model.eval()
        n, chunk = self.X_eval.shape[1], self.eval_chunk
        out = torch.cat([self.model(self.X_eval[:, i : i + chunk]) for i in range(0, n, chunk)],
                        dim=1)  # (K, N_test + N_val)
        self.model.train(was_training)
        error = (out - self.y_eval).square()
        if n == self.n_test:
            return error.mean(dim=1, keepdim=True)
        return torch.stack([error[:, : self.n_test].mean(dim=1), error[:, self.n_test:].mean(dim=1)],
                           dim=1)


def train_pack_fused(
    configs: Sequence[TrainConfig],
    prices: pl.DataFrame,
    *,
    checkpoint_dir: Path | None = None,
    on_epoch: PackEpochCallback | None = None,
) -> list[TrainResult]:
    """Train configs as one fused pack; one :class:`TrainResult` each, in the given order.

    Falls back to :func:`seqlab.engine.stream_pack.train_pack` (stream packs on CUDA, one after
    another elsewhere) when :func:`fused_blocker` refuses, recording the reason.
    """
    configs = list(configs)
    if not configs:
        return []
    started = time.perf_counter()
    device = resolve_device(configs[0].device)
    order = sorted(range(len(configs)), key=lambda i: configs[i].depth)  # the model's order
    members = [configs[i] for i in order]
    reason = fused_blocker(members, device)
    if reason is None:
        try:
            data = PackData(members, prices, device)
        except ValueError as error:
            reason = str(error)
    if reason is not None:
        results = train_pack(configs, prices, checkpoint_dir=checkpoint_dir, on_epoch=on_epoch)
        for result in results:
            result.determinism["fused_refused"] = reason
        return results
    determinism = configure_determinism(device)
    run, graph = prepared_run(
        lambda: FusedRun(members, data, device, triton_rnn.recurrence_triton),
        None if device.type == "cuda" else f"device {device} is not CUDA", "fused")
    has_val = data.X_val.shape[1] > 0
    histories = [RunHistory(c, has_val=has_val) for c in members]
    train_members(run, histories, on_epoch, order)
    recurrence = ("triton (interpreter)" if triton_rnn.interpreter_on()
                  else f"triton (compiled, {determinism['precision']})")
    results: list[TrainResult | None] = [None] * len(configs)
    for k, (config, member) in enumerate(zip(members, run.members, strict=True)):
        member.load_state_dict(run.model.member_state_dict(k))  # the last state, if none was best
        record = {**determinism, "seed": config.seed, "graph": graph, "recurrence": recurrence,
                  "optimizer": run.optimizer_kind,
                  "pack": {"size": run.k, "index": order[k], "mode": "fused"}}
        device_data = data.device_data(config)
        results[order[k]] = assemble_result(
            config, data.data(config), member, histories[k], device_data.X_test, device=device,
            determinism=record, started=started, checkpoint_dir=checkpoint_dir)
    return results
