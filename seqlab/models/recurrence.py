"""The recurrence of K independent single-layer cells, given their projected inputs.

``projected`` is (K, T, B, G*H): every step's input projection ``x W_ih^T + b_ih``, done
beforehand as one batched matmul. What remains is the sequential part: per step
``h W_hh^T + b_hh`` and the cell's gate equations, in torch's gate order (LSTM i,f,g,o;
GRU r,z,n). :func:`recurrence_torch` is the reference, written with torch ops (autograd
through the unrolled loop); ``seqlab.models.triton_rnn`` computes the same thing with
one persistent kernel per (cell, layer) for the forward pass and backpropagation through
time.
"""

from __future__ import annotations

import os

import torch


def tf32_enabled() -> bool:
    """``SEQLAB_CUDA_TF32`` (default on): TF32 tensor cores on a GPU for cuDNN's RNNs, torch's
    float32 matmuls (the fused engine's input projections, their gradients, ``W_hh``'s) and
    the fused kernels' dots. ``0`` trades that speed for full fp32."""
    return os.environ.get("SEQLAB_CUDA_TF32", "1").strip() not in ("0", "false", "no")


def cell_step(cell: str, projected: torch.Tensor, recurrent: torch.Tensor, h: torch.Tensor,
              c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One step with torch's equations; returns the new (h, c) (c is only used by LSTM)."""
    if cell == "rnn":
        return torch.tanh(projected + recurrent), c
    if cell == "lstm":
        i, f, g, o = (projected + recurrent).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    x_r, x_z, x_n = projected.chunk(3, dim=-1)
    h_r, h_z, h_n = recurrent.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h, c


def recurrence_torch(cell: str, projected: torch.Tensor, weight_hh: torch.Tensor,
                     bias_hh: torch.Tensor) -> torch.Tensor:
    """(K, T, B, G*H) projected inputs, (K, G*H, H) and (K, G*H) weights -> (K, T, B, H)."""
    k, _, b, _ = projected.shape
    hidden = weight_hh.shape[-1]
    w_hh_t, b_hh = weight_hh.transpose(1, 2), bias_hh.unsqueeze(1)
    h = projected.new_zeros(k, b, hidden)
    c = projected.new_zeros(k, b, hidden)
    outputs = []
    # unbind, not projected[:, step]: its backward is one stack, where T selects would
    # each scatter into a zeroed copy of the whole projection.
    for step_input in projected.unbind(1):  # plain Python: unrolled into a captured graph
        h, c = cell_step(cell, step_input, torch.baddbmm(b_hh, h, w_hh_t), h, c)
        outputs.append(h)
    return torch.stack(outputs, dim=1)
