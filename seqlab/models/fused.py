"""A mixed pack of StackedRNN models as one module: any cells, depths, norms and input widths.

Members share the hidden size. Member k computes what ``StackedRNN`` with member k's
weights computes on its own windows (up to float reassociation), but each layer index
runs once for all members that have that layer:

* layer l's members (every member deeper than l) are grouped by cell; each group's input
  projection is one batched matmul and its recurrence one call of ``recurrence`` (one
  persistent Triton kernel forward and one backward, or the torch reference loop);
* the norms after layer l are batched per kind (``BatchedNorm``: BatchNorm statistics per
  member over batch and time, LayerNorm per step);
* members are kept sorted by depth, so layer l's members are a suffix of the pack and a
  shallower member simply drops out: its last state goes to the head;
* inputs are zero-padded to the widest feature set; the padded columns of the first
  layer's ``W_ih`` see zero inputs, so their gradient, Adam update and weight stay zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from seqlab.models.batched import BatchedNorm
from seqlab.models.recurrence import recurrence_torch
from seqlab.models.rnn import GATES, ModelConfig, StackedRNN

Recurrence = Callable[[str, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class CellGroup(nn.Module):
    """The members of one layer index that share a cell: stacked weights, input projection."""

    def __init__(self, cell: str, positions: list[int], n_in: int, hidden: int) -> None:
        super().__init__()
        self.cell, self.positions = cell, positions
        rows = GATES[cell] * hidden
        k = len(positions)
        self.weight_ih = nn.Parameter(torch.zeros(k, rows, n_in))
        self.weight_hh = nn.Parameter(torch.zeros(k, rows, hidden))
        self.bias_ih = nn.Parameter(torch.zeros(k, rows))
        self.bias_hh = nn.Parameter(torch.zeros(k, rows))

    def forward(self, x: torch.Tensor, recurrence: Recurrence) -> torch.Tensor:
        k, t, b, n_in = x.shape  # (K, T, B, F_in) time-major
        projected = torch.baddbmm(self.bias_ih.unsqueeze(1), x.reshape(k, t * b, n_in),
                                  self.weight_ih.transpose(1, 2)).view(k, t, b, -1)
        return recurrence(self.cell, projected, self.weight_hh, self.bias_hh)


class NormGroup(nn.Module):
    """The members of one layer index that share a norm kind (``none`` has no parameters)."""

    def __init__(self, kind: str, positions: list[int], hidden: int) -> None:
        super().__init__()
        self.kind, self.positions = kind, positions
        self.norm = None if kind == "none" else BatchedNorm(kind, len(positions), hidden)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h if self.norm is None else self.norm(h)


def _grouped(h: torch.Tensor, groups: Sequence[nn.Module], inverse: torch.Tensor | None,
             apply: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Each group applied to its members' rows of ``h``, reassembled in member order."""
    if inverse is None:  # one group holding every member in order
        return apply(groups[0], h)
    parts = [apply(g, h.index_select(0, g.index)) for g in groups]
    return torch.cat(parts).index_select(0, inverse)


class FusedLayer(nn.Module):
    """Layer index l of the pack: its members' recurrent cells, then their norms."""

    def __init__(self, members: Sequence[ModelConfig], n_in: int, hidden: int) -> None:
        super().__init__()
        self.cells = nn.ModuleList(
            CellGroup(cell, positions, n_in, hidden) for cell, positions in _groups(members, "cell"))
        self.norms = nn.ModuleList(
            NormGroup(kind, positions, hidden) for kind, positions in _groups(members, "norm"))
        for name, groups in (("cell", self.cells), ("norm", self.norms)):
            order = [p for g in groups for p in g.positions]
            for g in groups:
                g.register_buffer("index", torch.tensor(g.positions, dtype=torch.long),
                                  persistent=False)
            inverse = None if order == list(range(len(members))) and len(groups) == 1 else \
                torch.tensor(order, dtype=torch.long).argsort()
            self.register_buffer(f"{name}_inverse", inverse, persistent=False)
        # Grouped cells and grouped norms: each norm group gathers its rows straight from the
        # cells' output (in cell-group order), saving a gather forward and its scatter backward.
        self.direct = self.cell_inverse is not None and self.norm_inverse is not None
        for g in self.norms:
            g.register_buffer("from_cells", self.cell_inverse.index_select(0, g.index)
                              if self.direct else None, persistent=False)

    def forward(self, x: torch.Tensor, recurrence: Recurrence) -> torch.Tensor:
        if not self.direct:
            h = _grouped(x, self.cells, self.cell_inverse, lambda g, part: g(part, recurrence))
            return _grouped(h, self.norms, self.norm_inverse, lambda g, part: g(part))
        by_cell = torch.cat([g(x.index_select(0, g.index), recurrence) for g in self.cells])
        parts = [g(by_cell.index_select(0, g.from_cells)) for g in self.norms]
        return torch.cat(parts).index_select(0, self.norm_inverse)


def _groups(members: Sequence[ModelConfig], field: str) -> list[tuple[str, list[int]]]:
    grouped: dict[str, list[int]] = {}
    for position, member in enumerate(members):
        grouped.setdefault(getattr(member, field), []).append(position)
    return list(grouped.items())


class FusedPackModel(nn.Module):
    """K StackedRNN architectures of one hidden size, trained as one model.

    ``configs`` must be sorted by depth (shallow first). ``forward`` maps windows
    (K, B, T, F_max), member k's features in its first ``n_features`` columns and zeros
    after, to predictions (K, B).
    """

    def __init__(self, configs: Sequence[ModelConfig], recurrence: Recurrence = recurrence_torch,
                 ) -> None:
        super().__init__()
        configs = list(configs)
        if not configs:
            raise ValueError("a fused pack needs at least one member")
        hidden = {c.hidden for c in configs}
        if len(hidden) > 1:
            raise ValueError(f"fused members must share the hidden size, got {sorted(hidden)}")
        depths = [c.depth for c in configs]
        if depths != sorted(depths):
            raise ValueError("fused members must be sorted by depth (shallow first)")
        for c in configs:
            if c.dropout > 0 and c.depth > 1:
                raise ValueError(f"fused members need dropout 0 between layers, got {c.dropout}")
        self.configs, self.k, self.hidden = configs, len(configs), hidden.pop()
        self.n_features = max(c.n_features for c in configs)
        self.recurrence = recurrence
        self.starts = [next(i for i, c in enumerate(configs) if c.depth > layer)
                       for layer in range(max(depths))]  # layer l's members: [starts[l], K)
        self.layers = nn.ModuleList(
            FusedLayer(configs[start:], self.n_features if layer == 0 else self.hidden, self.hidden)
            for layer, start in enumerate(self.starts))
        self.head_weight = nn.Parameter(torch.zeros(self.k, 1, self.hidden))
        self.head_bias = nn.Parameter(torch.zeros(self.k, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)  # (K, T, B, F): time-major, each step's slice one block
        lasts = []
        for layer, start in enumerate(self.starts):
            h = self.layers[layer](h, self.recurrence)  # (K_l, T, B, H)
            following = self.starts[layer + 1] if layer + 1 < len(self.starts) else self.k
            ending = following - start  # members whose last layer this is
            lasts.append(h[:ending, -1])
            h = h[ending:]
        last = torch.cat(lasts)  # (K, B, H)
        out = torch.baddbmm(self.head_bias.unsqueeze(1), last, self.head_weight.transpose(1, 2))
        return out.squeeze(-1)

    # --- members' weights -----------------------------------------------------------------

    def _member_keys(self, k: int) -> Iterator[tuple[str, str, int, int | None]]:
        """(StackedRNN key, this module's state-dict name, row, input columns or None)."""
        config = self.configs[k]
        fused = config.norm == "none"
        for layer, start in enumerate(self.starts[: config.depth]):
            position = k - start
            cells = self.layers[layer].cells
            index = next(i for i, g in enumerate(cells) if position in g.positions)
            row = cells[index].positions.index(position)
            prefix, suffix = ("rnn.", f"_l{layer}") if fused else (f"layers.{layer}.", "_l0")
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                columns = config.n_features if layer == 0 and name == "weight_ih" else None
                yield (f"{prefix}{name}{suffix}", f"layers.{layer}.cells.{index}.{name}", row,
                       columns)
            norms = self.layers[layer].norms
            index = next(i for i, g in enumerate(norms) if position in g.positions)
            if norms[index].norm is not None:
                row = norms[index].positions.index(position)
                for name in norms[index].norm.state_dict():
                    yield f"norms.{layer}.{name}", f"layers.{layer}.norms.{index}.norm.{name}", row, None
        yield "head.weight", "head_weight", k, None
        yield "head.bias", "head_bias", k, None

    def member_state_dict(self, k: int, state: Mapping[str, torch.Tensor] | None = None,
                          ) -> dict[str, torch.Tensor]:
        """Member k's weights as a state dict loadable into ``StackedRNN(configs[k])`` (copies),
        read from ``state`` (tensors named as in this module's state dict) or the module."""
        if not 0 <= k < self.k:
            raise IndexError(f"member {k} out of range for {self.k} members")
        state = self.state_dict() if state is None else state
        return {key: (state[name][row] if columns is None
                      else state[name][row][:, :columns]).detach().clone()
                for key, name, row, columns in self._member_keys(k)}

    @torch.no_grad()
    def load_members(self, models: Sequence[StackedRNN]) -> FusedPackModel:
        """Copy each member's weights (and BatchNorm buffers) in; returns self."""
        if [m.config for m in models] != self.configs:
            raise ValueError("models differ from the pack's member configs")
        mine = self.state_dict(keep_vars=True)
        for k, model in enumerate(models):
            state = model.state_dict()
            for key, name, row, columns in self._member_keys(k):
                target = mine[name][row] if columns is None else mine[name][row][:, :columns]
                target.copy_(state[key])
        return self

    def state_members(self) -> dict[str, torch.Tensor]:
        """For each state-dict tensor (parameters and BatchNorm buffers), the member owning
        each of its rows, as an index into the pack."""
        owners = {}
        for layer, start in enumerate(self.starts):
            for kind, groups in (("cells", self.layers[layer].cells),
                                 ("norms", self.layers[layer].norms)):
                for index, group in enumerate(groups):
                    rows = torch.tensor([start + p for p in group.positions], dtype=torch.long)
                    for name in group.state_dict():
                        owners[f"layers.{layer}.{kind}.{index}.{name}"] = rows
        owners["head_weight"] = owners["head_bias"] = torch.arange(self.k)
        return owners
