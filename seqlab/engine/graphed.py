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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import nn

import seqlab.engine.train as eager_engine
from seqlab.engine.config import TrainConfig
from seqlab.engine.recording import RunHistory, assemble_result
from seqlab.engine.result import EpochRecord, TrainResult
from seqlab.engine.runtime import configure_determinism, resolve_device, seeded_model
from seqlab.engine.train import predict_scaled, train_config
from seqlab.features.windows import FeatureData, build_features

WARMUP_STEPS = 3  # eager steps per batch shape before capture (cuDNN/cuBLAS lazy init)


class CaptureError(RuntimeError):
    """Capturing a training step failed; the caller falls back to eager training."""


@dataclass(frozen=True)
class DeviceData:
    """A config's windows on the device; shared by pack members with the same features."""

    X_train: torch.Tensor  # (N, T, F)
    y_train: torch.Tensor  # (N,)
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor

    @classmethod
    def from_features(cls, data: FeatureData, device: torch.device) -> DeviceData:
        def put(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(array).to(device)

        return cls(put(data.X_train), put(data.y_train), put(data.X_val), put(data.y_val),
                   put(data.X_test), put(data.y_test))


def capture_blocker(config: TrainConfig, device: torch.device) -> str | None:
    """Why ``config`` cannot be trained through a graph on ``device`` (None: it can)."""
    if device.type != "cuda":
        return "no CUDA" if not torch.cuda.is_available() else f"device {device} is not CUDA"
    if config.dropout > 0 and config.depth > 1:
        return (f"dropout {config.dropout} between layers: graph replays draw dropout masks "
                "from another RNG stream than eager, so results would differ")
    return None


def make_capturable_optimizer(model: nn.Module, config: TrainConfig) -> tuple[torch.optim.Adam, str]:
    """Adam whose step can live in a graph (state and step count on the device)."""
    params = list(model.parameters())
    try:
        optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay,
                                     fused=True, capturable=True)
        return optimizer, "adam fused capturable"
    except (RuntimeError, ValueError, TypeError):  # fused+capturable missing in this build
        optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay,
                                     foreach=True, capturable=True)
        return optimizer, "adam foreach capturable"


class CapturedRun:
    """Warm-up, capture, restore and replay: what a graphed run and a batched pack share.

    A subclass sets ``model``, ``optimizer``, ``device``, ``n``, ``n_full``, ``remainder``,
    ``order``, ``step_counter``, ``loss_sum`` and the ``graph_*``/``eval_losses``/``captured``
    fields, and defines ``_step(full)`` (one step on its static buffers), ``_evaluate()``
    (test[, val] losses) and ``begin_epoch()`` (this epoch's batch order, counters reset).
    """

    def capture(self) -> None:
        """Warm up, capture the step and eval graphs, then restore the initial state.

        Raises :class:`CaptureError` (with the cause chained) when anything fails.
        """
        try:
            self.prepare(use_graphs=True)
        except Exception as error:  # any capture failure means: train eagerly instead
            self.graph_full = self.graph_rem = self.graph_eval = None
            self.captured = False
            try:
                torch.cuda.synchronize(self.device)
            except Exception:  # a sticky CUDA error; the eager fallback will report it
                pass
            text = str(error).strip()
            message = text.splitlines()[0][:300] if text else ""
            raise CaptureError(f"{type(error).__name__}: {message}") from error

    def prepare(self, *, use_graphs: bool) -> None:
        """Warm-up steps, graph capture (CUDA, ``use_graphs``), then the initial state restored.

        Without graphs the same static-buffer steps later run eagerly, one call per batch:
        this is how the buffer, counter and restore logic is tested on a CPU.
        """
        initial = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        shapes = [full for full, count in ((True, self.n_full), (False, self.remainder)) if count]
        self.order.copy_(torch.arange(self.n, device=self.device))  # broadcast over members
        if use_graphs:
            # A stream of its own for warm-up and capture: cuBLAS keys its workspace by
            # stream, and graphs of a pack replay concurrently, so they must not share one.
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                self._warm_up(shapes)
            torch.cuda.current_stream(self.device).wait_stream(side)
            torch.cuda.synchronize(self.device)
            self._capture_graphs(shapes, side)
        else:
            self._warm_up(shapes)
        self._restore(initial)

    def _warm_up(self, shapes: list[bool]) -> None:
        for full in shapes:
            for _ in range(WARMUP_STEPS):
                self.step_counter.zero_()
                self.optimizer.zero_grad(set_to_none=True)
                self._step(full)
        self._evaluate()

    def _capture_graphs(self, shapes: list[bool], stream: torch.cuda.Stream) -> None:
        graphs = {}
        for full in shapes:
            graph = torch.cuda.CUDAGraph()
            self.optimizer.zero_grad(set_to_none=True)  # backward allocates grads in the pool
            with torch.cuda.graph(graph, stream=stream):
                self._step(full)
            graphs[full] = graph
        graph_eval = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph_eval, stream=stream):
            self.eval_losses = self._evaluate()
        self.graph_full, self.graph_rem, self.graph_eval = graphs.get(True), graphs.get(False), graph_eval
        torch.cuda.synchronize(self.device)
        self.captured = True

    def _restore(self, initial: dict[str, torch.Tensor]) -> None:
        """Undo the warm-up's training in place: captured graphs hold these tensors' addresses."""
        with torch.no_grad():
            for name, tensor in self.model.state_dict().items():
                tensor.copy_(initial[name])
            for state in self.optimizer.state.values():
                for value in state.values():
                    if torch.is_tensor(value):
                        value.zero_()  # a fresh Adam: step 0, zero moments
            self.step_counter.zero_()
            self.loss_sum.zero_()

    def replay_full(self) -> None:
        """One full-batch step: the graph, or the same step eagerly when not captured."""
        if self.captured:
            self.graph_full.replay()
        else:
            self.optimizer.zero_grad(set_to_none=True)
            self._step(True)

    def finish_epoch(self) -> torch.Tensor:
        """Replay the remainder step and the evaluation; losses [train, test(, val)] (per
        member in a batched pack), without a host sync."""
        if self.graph_rem is not None:
            self.graph_rem.replay()
        elif self.remainder and not self.captured:  # not captured: step eagerly
            self.optimizer.zero_grad(set_to_none=True)
            self._step(False)
        if self.captured:
            self.graph_eval.replay()
            eval_losses = self.eval_losses
        else:
            eval_losses = self._evaluate()
        return torch.cat([(self.loss_sum / self.n).unsqueeze(-1), eval_losses], dim=-1)

    def run_epoch(self) -> torch.Tensor:
        """One whole epoch enqueued on the current stream."""
        self.begin_epoch()
        for _ in range(self.n_full):
            self.replay_full()
        return self.finish_epoch()


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
