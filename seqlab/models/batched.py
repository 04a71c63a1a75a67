"""K copies of one StackedRNN architecture as one module: weights stacked along a K axis.

Used by batched packs (``seqlab.engine.batched``): every kernel (input projection,
recurrent ``baddbmm``, norms, head) does all K members' work in one launch. The cells are
written out with torch's gate equations and gate order (LSTM i,f,g,o; GRU r,z,n), so member
k computes what ``StackedRNN`` with member k's weights computes, up to float reassociation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from seqlab.models.recurrence import recurrence_torch
from seqlab.models.rnn import GATES, ModelConfig, StackedRNN

BN_MOMENTUM, NORM_EPS = 0.1, 1e-5  # nn.BatchNorm1d / nn.LayerNorm defaults


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
        return recurrence_torch(self.cell, projected, self.weight_hh, self.bias_hh)


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

    def _member_keys(self) -> Iterator[tuple[str, str]]:
        """(StackedRNN state-dict key, this module's state-dict name); member k is row k."""
        fused = self.config.norm == "none"
        for i in range(len(self.layers)):
            prefix, suffix = ("rnn.", f"_l{i}") if fused else (f"layers.{i}.", "_l0")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                yield f"{prefix}{name}{suffix}", f"layers.{i}.{name}"
        for i, norm in enumerate(self.norms):
            for name in norm.state_dict():
                yield f"norms.{i}.{name}", f"norms.{i}.{name}"
        yield "head.weight", "head_weight"
        yield "head.bias", "head_bias"

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
        mine = batched.state_dict(keep_vars=True)
        with torch.no_grad():
            for key, name in batched._member_keys():
                mine[name].copy_(torch.stack([state[key] for state in states]))
        return batched

    def member_state_dict(self, k: int, state: Mapping[str, torch.Tensor] | None = None,
                          ) -> dict[str, torch.Tensor]:
        """Member k's weights as a state dict loadable into ``StackedRNN(self.config)`` (copies),
        read from ``state`` (tensors named as in this module's state dict) or the module."""
        if not 0 <= k < self.k:
            raise IndexError(f"member {k} out of range for {self.k} members")
        state = self.state_dict() if state is None else state
        return {key: state[name][k].detach().clone() for key, name in self._member_keys()}
