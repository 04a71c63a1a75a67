"""What every captured trainer shares: the step captured as a CUDA graph and replayed.

:class:`CapturedRun` is the base of a single config's graphed run
(``seqlab.engine.graphed.GraphedRun``) and of a lock-step pack of K configs
(``seqlab.engine.lockstep.LockstepRun``): warm-up, capture, restore and replay. Beside it
the pieces those trainers share: the windows on the device, why a config cannot be
captured, and an Adam whose step can live in a graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from seqlab.engine.config import TrainConfig
from seqlab.features.windows import FeatureData

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
