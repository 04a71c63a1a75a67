"""Torch modules: one configurable stacked recurrent regressor."""

from __future__ import annotations

from seqlab.models.rnn import CELLS, NORMS, ModelConfig, StackedRNN, count_parameters

__all__ = ["CELLS", "NORMS", "ModelConfig", "StackedRNN", "count_parameters"]
