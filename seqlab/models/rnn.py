"""One configurable recurrent regressor: RNN/LSTM/GRU × depth × normalization."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqlab.models.cells import CELL_NAMES, GATES, NORMS

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
assert tuple(CELLS) == CELL_NAMES  # one list of cells: the names a grid may ask for
__all__ = ["CELLS", "GATES", "NORMS", "ModelConfig", "StackedRNN", "count_parameters"]


@dataclass(frozen=True)
class ModelConfig:
    cell: str = "lstm"  # "rnn" (tanh) | "lstm" | "gru"
    depth: int = 1  # stacked recurrent layers, >= 1
    hidden: int = 64  # hidden units per layer
    norm: str = "none"  # "none" | "batch" | "layer", applied after every recurrent layer
    dropout: float = 0.0  # between recurrent layers (not after the last one)
    n_features: int = 1  # input channels per time step

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; allowed: {', '.join(CELLS)}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; allowed: {', '.join(NORMS)}")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")
        if self.hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {self.hidden}")
        if self.n_features < 1:
            raise ValueError(f"n_features must be >= 1, got {self.n_features}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class StackedRNN(nn.Module):
    """Recurrent layers, a norm after each, and a linear head on the last time step.

    Layout for ``depth = D`` (x is (B, T, F), batch first)::

        x -> rnn_1 -> norm_1 -> dropout -> rnn_2 -> norm_2 -> ... -> rnn_D -> norm_D
          -> h[:, -1] -> linear -> (B,)

    * ``norm="batch"``: ``BatchNorm1d(hidden)`` applied to the layer output viewed as
      (B, H, T), so each hidden channel is normalized over the batch *and* all time steps
      (running statistics in eval mode).
    * ``norm="layer"``: ``LayerNorm(hidden)`` over the hidden vector of each (sample, step).
    * ``norm="none"``: no norm; the whole stack is one fused ``nn.RNN/LSTM/GRU`` with
      ``num_layers=depth`` (cuDNN's multi-layer kernel on GPU), whose own ``dropout``
      argument sits between layers exactly where the stacked variant puts it.

    The norm also follows the last recurrent layer, so the head always reads a normalized
    state. Dropout never follows the last layer.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        cell = CELLS[config.cell]
        self.fused = config.norm == "none"
        if self.fused:
            between = config.dropout if config.depth > 1 else 0.0
            self.rnn = cell(
                config.n_features, config.hidden, num_layers=config.depth,
                batch_first=True, dropout=between,
            )
        else:
            sizes = [config.n_features] + [config.hidden] * (config.depth - 1)
            self.layers = nn.ModuleList(cell(n_in, config.hidden, batch_first=True) for n_in in sizes)
            norm = nn.BatchNorm1d if config.norm == "batch" else nn.LayerNorm
            self.norms = nn.ModuleList(norm(config.hidden) for _ in sizes)
            self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map windows (B, T, F) to one scaled prediction per window (B,)."""
        if self.fused:
            h, _ = self.rnn(x)  # (B, T, H)
        else:
            h = x  # (B, T, F)
            last = len(self.layers) - 1
            for i, (layer, norm) in enumerate(zip(self.layers, self.norms, strict=True)):
                h, _ = layer(h)  # (B, T, H)
                if isinstance(norm, nn.BatchNorm1d):
                    h = norm(h.transpose(1, 2)).transpose(1, 2)  # stats over (B, T) per channel
                else:
                    h = norm(h)  # stats over H per (sample, step)
                if i < last:
                    h = self.drop(h)
        return self.head(h[:, -1]).squeeze(-1)  # (B, H) -> (B, 1) -> (B,)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters of a model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
