"""The recurrent cells and norms a config may name, without torch.

A grid's settings are checked against these names before anything heavy loads (the CLI
refuses a bad ``--cells`` in a fraction of a second); ``seqlab.models.rnn`` maps each cell
name to its torch module.
"""

from __future__ import annotations

CELL_NAMES: tuple[str, ...] = ("rnn", "lstm", "gru")
NORMS: tuple[str, ...] = ("none", "batch", "layer")
# Gate blocks stacked in torch's weight_ih/weight_hh per cell (memory estimates, batched packs,
# the fused kernels).
GATES: dict[str, int] = {"rnn": 1, "lstm": 4, "gru": 3}
