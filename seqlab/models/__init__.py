"""Every torch module of seqlab: the stacked recurrent regressor (``rnn``), K of them with
stacked weights (``batched``) and its hand-written CPU recurrent layers (``cpu_rnn``)."""

from __future__ import annotations

from seqlab.models.rnn import CELLS, NORMS, ModelConfig, StackedRNN, count_parameters

__all__ = ["CELLS", "NORMS", "ModelConfig", "StackedRNN", "count_parameters"]
