"""The training engine: one config + prices in, one :class:`TrainResult` out.

Built for speed on small recurrent models, where per-step overhead dominates: all
windows live on the device as tensors, a seeded permutation (:func:`batch_orders`) picks
each mini-batch with ``index_select`` (no DataLoader, no per-batch copies), and the running loss stays on
the device, read once per epoch together with the evaluation losses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

from seqlab.engine.config import TrainConfig
from seqlab.engine.recording import RunHistory, assemble_result, predict_scaled
from seqlab.engine.result import EpochRecord, TrainResult
from seqlab.engine.runtime import configure_determinism, resolve_device, seeded_model
from seqlab.features.windows import build_features
from seqlab.models.cpu_rnn import fast_forward, fast_path_label, fast_path_supported
from seqlab.models.rnn import StackedRNN


def make_optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Adam:
    """Adam with the fused kernel: one pass per parameter tensor instead of a dozen ops.

    Measured on 2 CPU threads it cut epochs by up to 13% for these small models (never
    measurably slower); on CUDA it is one launch per step. Fused Adam exists for both
    device types, so ``device`` does not change the choice today.
    """
    return torch.optim.Adam(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
    )


def model_forward(model: nn.Module, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """The training forward pass on CPU: ``seqlab.models.cpu_rnn.fast_forward``.

    torch's CPU RNN/GRU backward is autograd over every small op of every step; the
    hand-written one does the weight gradients as batched matmuls over all steps and
    trains these models 1.5-2.2x faster than a plain loop. LSTM keeps torch's oneDNN
    kernels, run time-major so norms between layers need no transposes (1.1-1.3x with a
    norm). Same function, gradients equal within float rounding.
    """
    if device.type == "cpu" and isinstance(model, StackedRNN) and fast_path_supported(model):
        return lambda x: fast_forward(model, x)
    return model


def _signed(value: int) -> int:
    """``value`` mod 2**64 as a signed int64 (torch has no unsigned 64-bit arithmetic)."""
    value &= 2**64 - 1
    return value - 2**64 if value >= 2**63 else value


# splitmix64's increment and multipliers; int64 products wrap, as the uint64 ones do.
_GOLDEN, _MIX_A, _MIX_B = (_signed(c) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9,
                                                 0x94D049BB133111EB))


def _mix(z: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on int64 tensors (logical shifts: arithmetic shift, then mask)."""
    z = (z ^ ((z >> 30) & (2**34 - 1))) * _MIX_A
    z = (z ^ ((z >> 27) & (2**37 - 1))) * _MIX_B
    return z ^ ((z >> 31) & (2**33 - 1))


def batch_orders(seeds: torch.Tensor, epoch: int, n: int) -> torch.Tensor:
    """Each seed's batch order in ``epoch``: (K, n) permutations of ``range(n)``, one call.

    Window i's sort key is a hash of (seed, epoch, i), so the order depends on nothing
    else: every engine (eager, graphed, stream, batched and fused packs) gives a config
    the same windows on any device, and a pack of K draws its K orders in one sort
    instead of K ``randperm`` calls from Python.
    """
    seeds = seeds.to(torch.int64).view(-1, 1)  # (K, 1)
    base = _mix(seeds * _GOLDEN + _signed((epoch + 1) * 0xD1B54A32D192ED03))  # (K, 1)
    steps = torch.arange(1, n + 1, dtype=torch.int64, device=seeds.device) * _GOLDEN  # (n,)
    return _mix(base + steps).argsort(dim=1, stable=True)  # (K, n)


def batch_plan(n: int, batch_size: int, *, fold_single: bool) -> tuple[int, int]:
    """(number of full batches, size of the last batch; 0 when ``batch_size`` divides ``n``).

    With ``fold_single`` a last batch of one window joins the batch before it, which then
    holds ``batch_size + 1``: BatchNorm cannot normalise a single value per channel, and a
    one-window batch of a lookback-1 model is exactly that. Every engine batches by this.
    """
    n_full, last = divmod(n, batch_size)
    if fold_single and last == 1 and n_full > 0:
        return n_full - 1, batch_size + 1
    return n_full, last


def folds_single_window(norm: str, lookback: int) -> bool:
    """Whether a one-window batch would leave BatchNorm one value per channel."""
    return norm == "batch" and lookback == 1


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    seed: int,
    epoch: int,
    grad_clip: float | None = None,
) -> torch.Tensor:
    """One pass over mini-batches in ``batch_orders(seed, epoch)``; returns the
    sample-weighted mean loss.

    The result is a 0-d tensor on the device: nothing here waits for the device.
    """
    model.train()
    forward = model_forward(model, X.device)
    n = X.shape[0]
    norm = model.config.norm if isinstance(model, StackedRNN) else "none"
    n_full, last = batch_plan(n, batch_size, fold_single=folds_single_window(norm, X.shape[1]))
    ends = [*range(batch_size, n_full * batch_size + 1, batch_size)] + ([n] if last else [])
    order = batch_orders(torch.tensor([seed], device=X.device), epoch, n)[0]  # (N,)
    total = torch.zeros((), device=X.device)
    for start, end in pairwise([0, *ends]):
        idx = order[start:end]  # (B,)
        xb = X.index_select(0, idx)  # (B, T, F)
        yb = y.index_select(0, idx)  # (B,)
        loss = F.mse_loss(forward(xb), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        total += loss.detach() * idx.numel()
    return total / n


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
    if device.type == "cpu":
        determinism["torch_threads"] = torch.get_num_threads()  # sums may round differently

    model = seeded_model(config.model_config(data.n_features), config.seed, device)  # init, dropout
    optimizer = make_optimizer(model, config, device)
    determinism["recurrent_backward"] = (
        fast_path_label(model) if model_forward(model, device) is not model else "torch")

    def on_device(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(device)

    X_train, y_train = on_device(data.X_train), on_device(data.y_train)
    X_val, y_val = on_device(data.X_val), on_device(data.y_val)
    X_test, y_test = on_device(data.X_test), on_device(data.y_test)
    has_val = X_val.shape[0] > 0

    history = RunHistory(config, has_val)
    for epoch in range(config.epochs):
        epoch_start = time.perf_counter()
        train_loss = train_one_epoch(
            model, optimizer, X_train, y_train, batch_size=config.batch_size,
            seed=config.seed, epoch=epoch, grad_clip=config.grad_clip,
        )
        losses = [train_loss, F.mse_loss(predict_scaled(model, X_test), y_test)]
        if has_val:
            losses.append(F.mse_loss(predict_scaled(model, X_val), y_val))
        values = torch.stack(losses).tolist()  # the epoch's single host sync
        if not history.record(values, time.perf_counter() - epoch_start, model, on_epoch):
            break
    return assemble_result(
        config, data, model, history, X_test, device=device, determinism=determinism,
        started=started, checkpoint_dir=checkpoint_dir,
    )
