"""K members stepped as one model: what batched and fused packs share.

Each member keeps its own seeded batch order (``batch_orders``, as its eager run's), so
it sees the windows its eager run sees; a step gathers every member's batch into static
buffers, takes the sum of the members' mean squared errors (no parameter row is shared,
so row k's gradient is member k's own), clips per member and steps one Adam over the
stacked tensors (elementwise, so it equals K separate ones).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from seqlab.engine.captured import CapturedRun, CaptureError
from seqlab.engine.config import TrainConfig
from seqlab.engine.recording import RunHistory
from seqlab.engine.result import EpochRecord
from seqlab.engine.train import batch_orders, batch_plan, folds_single_window


def member_mse(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each member's mean squared error (K,) for predictions (K, B) and targets (K, B) or (B,)."""
    return (predicted - target).square().mean(dim=1)


def _one_hot(rows: torch.Tensor, k: int) -> torch.Tensor:
    """(K, len(rows)): entry [m, i] is 1 where row i belongs to member m."""
    owner = torch.zeros(k, len(rows), device=rows.device)
    owner[rows, torch.arange(len(rows), device=rows.device)] = 1.0
    return owner


class LockstepRun(CapturedRun):
    """A subclass sets ``model`` and ``optimizer``, calls :meth:`setup`, and defines
    ``_evaluate`` (its members' test[, val] losses, (K, 1|2))."""

    def setup(self, configs: Sequence[TrainConfig], windows: torch.Tensor, targets: torch.Tensor,
              n: int, offset: torch.Tensor, owners: dict[str, torch.Tensor],
              device: torch.device) -> None:
        """``windows`` (R, T, F) and ``targets`` (R,) hold every member's ``n`` training
        windows, member k's window i at row ``offset[k] + i``; ``owners`` names, for every
        tensor of the model's state dict, the member owning each of its rows (dim 0)."""
        k, batch = len(configs), configs[0].batch_size
        lookback, width = windows.shape[1:]
        self.device, self.k, self.n, self.batch = device, k, n, batch
        self.windows, self.targets = windows, targets
        self.offset = offset.view(k, 1).to(device)
        owners = {name: rows.to(device) for name, rows in owners.items()}
        self.owners = [(p, owners[name], _one_hot(owners[name], k))
                       for name, p in self.model.named_parameters()]
        # Each member's best state so far, as stacked copies updated in bulk (row k is
        # member k's): per-member state dicts would cost ~20 small copies per member.
        state = self.model.state_dict()
        self.best = {name: tensor.detach().clone() for name, tensor in state.items()}
        self.best_rows = [(state[name], self.best[name], rows) for name, rows in owners.items()]
        self.seeds = torch.tensor([c.seed for c in configs], device=device)
        self.epoch = 0
        clips = [c.grad_clip for c in configs]
        self.clipping = any(clip is not None for clip in clips)
        self.max_norm = torch.tensor([clip or 1.0 for clip in clips], device=device)
        self.clipped = torch.tensor([clip is not None for clip in clips], device=device)
        self.n_full, self.remainder = batch_plan(
            n, batch, fold_single=folds_single_window(configs[0].norm, lookback))
        self.order = torch.zeros(k, n, dtype=torch.long, device=device)  # each member's permutation
        self.order_full = self.order[:, : self.n_full * batch].view(k, self.n_full, batch)
        self.order_rem = self.order[:, self.n_full * batch:]  # (K, R)
        self.step_counter = torch.zeros(1, dtype=torch.long, device=device)  # full batches done
        self.loss_sum = torch.zeros(k, device=device)  # per member, sample-weighted
        self.X_batch = torch.zeros(k, batch, lookback, width, device=device)
        self.y_batch = torch.zeros(k, batch, device=device)
        self.X_rem = torch.zeros(k, self.remainder, lookback, width, device=device)
        self.y_rem = torch.zeros(k, self.remainder, device=device)
        self.graph_full = self.graph_rem = self.graph_eval = None
        self.eval_losses: torch.Tensor | None = None  # (K, 1|2): test[, val]
        self.captured = False

    def _step(self, full: bool) -> None:
        """One training step of all members on the static buffers."""
        if full:
            idx = self.order_full.index_select(1, self.step_counter).view(self.k, self.batch)
            xb, yb, size = self.X_batch, self.y_batch, self.batch
        else:
            idx, xb, yb, size = self.order_rem, self.X_rem, self.y_rem, self.remainder
        flat = (idx + self.offset).reshape(-1)
        torch.index_select(self.windows, 0, flat, out=xb.view(-1, *xb.shape[2:]))  # no temporary
        torch.index_select(self.targets, 0, flat, out=yb.view(-1))
        losses = member_mse(self.model(xb), yb)  # (K,)
        losses.sum().backward()  # row k's gradient is member k's own
        if self.clipping:
            self._clip_per_member()
        self.optimizer.step()
        with torch.no_grad():
            self.loss_sum.add_(losses.detach() * size)
            if full:
                self.step_counter.add_(1)

    @torch.no_grad()
    def _clip_per_member(self) -> None:
        """``clip_grad_norm_`` for each member over its rows of every stacked gradient."""
        squares = torch.zeros(self.k, device=self.device)
        for param, rows, owner in self.owners:
            if param.grad is not None:  # a matmul, not index_add_: CUDA atomics add in any order
                squares += owner @ param.grad.reshape(len(rows), -1).square().sum(1)
        coef = (self.max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)  # as clip_grad_norm_
        coef = torch.where(self.clipped, coef, torch.ones_like(coef))
        for param, rows, _ in self.owners:
            if param.grad is not None:
                param.grad.mul_(coef.index_select(0, rows).view(-1, *([1] * (param.dim() - 1))))

    @torch.no_grad()
    def keep_best(self, members: Sequence[int]) -> None:
        """Copy these members' rows of every state tensor into the best copies."""
        chosen = torch.zeros(self.k, dtype=torch.bool)
        chosen[list(members)] = True
        chosen = chosen.to(self.device)
        for current, best, rows in self.best_rows:
            keep = chosen.index_select(0, rows).view(-1, *([1] * (current.dim() - 1)))
            best.copy_(torch.where(keep, current, best))

    def best_state(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's best state as a StackedRNN state dict."""
        return self.model.member_state_dict(k, self.best)

    def begin_epoch(self) -> None:
        """Every member's batch order for this epoch (one sort for all) and the counters reset."""
        self.order.copy_(batch_orders(self.seeds, self.epoch, self.n))
        self.epoch += 1
        self.step_counter.zero_()
        self.loss_sum.zero_()


class _NoState:
    """Stands for a member in ``RunHistory.record``: its best state is kept in bulk instead."""

    def state_dict(self) -> dict:
        return {}


def train_members(run: LockstepRun, histories: list[RunHistory],
                  on_epoch: Callable[[int, EpochRecord], None] | None,
                  index: Sequence[int]) -> None:
    """Epochs until every member has stopped; member k is reported as ``index[k]``.

    A member that stopped early keeps being stepped (the pack steps as one) but its history
    is closed; each member's best state is in its history at the end.
    """
    active, no_state = list(range(run.k)), _NoState()
    while active:
        epoch_start = time.perf_counter()
        rows = run.run_epoch().tolist()  # the pack's single host sync per epoch
        seconds = time.perf_counter() - epoch_start
        still, improved = [], []
        for k in active:
            callback = None if on_epoch is None else (lambda r, i=index[k]: on_epoch(i, r))
            best = histories[k].best_epoch
            if histories[k].record(rows[k], seconds, no_state, callback):
                still.append(k)
            if histories[k].best_epoch != best:
                improved.append(k)
        if improved:
            run.keep_best(improved)
        active = still
    for k, history in enumerate(histories):
        if history.best_state is not None:
            history.best_state = run.best_state(k)


def prepared_run(make: Callable[[], LockstepRun], blocker: str | None, label: str,
                 ) -> tuple[LockstepRun, str]:
    """A run ready for epoch 1: captured when nothing blocks a CUDA graph, else stepped
    eagerly; with its ``graph`` record (``captured`` or ``eager-<label>: <reason>``)."""
    if blocker is None:
        run = make()
        try:
            run.capture()
            return run, "captured"
        except CaptureError as error:
            blocker = f"capture failed: {error}"
            del run  # rebuilt below: a failed capture may leave the state half-stepped
    run = make()
    run.prepare(use_graphs=False)
    return run, f"eager-{label}: {blocker}"
