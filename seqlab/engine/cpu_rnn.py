"""Hand-written backprop-through-time for StackedRNN's recurrent layers on CPU.

On CPU, ``nn.RNN``/``nn.GRU`` training is driven by autograd one small op at a time: a
batch of 64 windows x 60 steps records thousands of autograd nodes per layer and
accumulates the weight gradients step by step. Here each recurrent layer is one
``torch.autograd.Function``:

* forward (time-major, no autograd): the input projection for all steps is one matmul;
  each step is one ``addmm`` against ``W_hh`` plus a few in-place elementwise ops that
  write into preallocated (T, B, ...) storage; the per-step local derivatives are then
  formed for all steps at once;
* backward: per step only the hidden-state gradient recurrence (a few elementwise ops and
  one (B, G*H) x (G*H, H) matmul) runs, storing the pre-activation gradients; the weight,
  bias and input gradients are each ONE matmul/sum over all T*B rows.

``fast_forward`` computes exactly ``StackedRNN.forward`` (same parameters, same norm
modules, so BatchNorm running statistics update as usual) with these layers.
``fast_path_supported`` says when it applies; callers fall back to ``model(x)`` otherwise.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from seqlab.models.rnn import StackedRNN

# LSTM is left to torch: on CPU nn.LSTM trains through oneDNN's fused RNN kernels. A
# hand-written LSTM in this module's layout (reordered gates, bulk weight gradients) took
# 32-36 ms per forward+backward of a 2-layer batch against oneDNN's 16-26 ms (2 threads,
# B=64, T=60, H=64); torch.compile of an unrolled cell took 32-43 ms after a 100 s compile.
FAST_CELLS: tuple[str, ...] = ("rnn", "gru")

# Layout: inside a layer every per-step quantity is "unit-major", (units, B): W_hh @ h^T
# gives each gate as a contiguous (H, B) row block, so every elementwise op of the
# recurrence runs on contiguous memory (ops on column slices of a (B, G*H) block are
# several times slower on CPU) and each step needs exactly one matmul each way.


def _input_projection(x_tm: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """All steps' input pre-activations at once: (T, B, F) -> (T, G*H, B)."""
    steps, batch, n_in = x_tm.shape
    rows = torch.addmm(bias, x_tm.reshape(steps * batch, n_in), w_ih.t())  # (T*B, G*H)
    return rows.view(steps, batch, -1).transpose(1, 2).contiguous()


def _batch_first(states: torch.Tensor) -> torch.Tensor:
    """Unit-major states (T+1, H, B) with the zero initial state first -> output (B, T, H)."""
    return states[1:].permute(2, 0, 1).contiguous()


def _unit_major(d_out: torch.Tensor) -> torch.Tensor:
    """Output gradient (B, T, H) -> a fresh (T, H, B) copy (backward accumulates into it)."""
    return d_out.permute(1, 2, 0).clone(memory_format=torch.contiguous_format)


def _param_grads(
    d_gi: torch.Tensor, d_gh: torch.Tensor | None, x_tm: torch.Tensor, states: torch.Tensor,
    w_ih: torch.Tensor, needs: tuple[bool, ...],
) -> tuple[torch.Tensor | None, ...]:
    """Input, weight and bias gradients, each ONE matmul (or sum) over all T*B rows.

    ``d_gi``/``d_gh``: (T, G*H, B) gradients of the input/recurrent pre-activations
    (``d_gh=None`` when they are equal); ``states``: (T+1, H, B) with h_0 first.
    """
    steps, width, batch = d_gi.shape
    d_gi_cols = d_gi.permute(1, 0, 2).reshape(width, steps * batch)  # (G*H, T*B)
    d_gh_cols = d_gi_cols if d_gh is None else d_gh.permute(1, 0, 2).reshape(width, steps * batch)
    d_x = d_w_ih = d_w_hh = d_b_ih = d_b_hh = None
    if needs[0]:
        d_x = (d_gi_cols.t() @ w_ih).view(x_tm.shape).transpose(0, 1)  # (B, T, F)
    if needs[1]:
        d_w_ih = d_gi_cols @ x_tm.reshape(steps * batch, -1)
    if needs[2]:
        h_prev = states[:-1].transpose(1, 2).reshape(steps * batch, -1)  # (T*B, H)
        d_w_hh = d_gh_cols @ h_prev
    if needs[3]:
        d_b_ih = d_gi_cols.sum(1)
    if needs[4]:
        d_b_hh = d_gh_cols.sum(1)
    return d_x, d_w_ih, d_w_hh, d_b_ih, d_b_hh


class TanhRNNLayer(torch.autograd.Function):
    """One ``nn.RNN(nonlinearity="tanh")`` layer, batch first, zero initial state."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):  # noqa: ANN001, ANN205 - autograd signature
        x_tm = x.transpose(0, 1).contiguous()  # (T, B, F)
        steps, batch, _ = x_tm.shape
        pre = _input_projection(x_tm, w_ih, b_ih + b_hh).unbind(0)  # both biases folded in
        states = x.new_zeros(steps + 1, w_hh.shape[1], batch)  # states[0] = h_0 = 0
        h = states.unbind(0)
        for t in range(steps):
            torch.addmm(pre[t], w_hh, h[t], out=h[t + 1]).tanh_()
        ctx.save_for_backward(x_tm, w_ih, w_hh, states)
        return _batch_first(states)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out):  # noqa: ANN001, ANN205
        x_tm, w_ih, w_hh, states = ctx.saved_tensors
        d_h = _unit_major(d_out)  # accumulates into the total dL/dh_t per step
        slope = 1.0 - states[1:] * states[1:]  # tanh' for all steps at once
        d_pre = torch.empty_like(slope)
        dh, dp, s, w_t = d_h.unbind(0), d_pre.unbind(0), slope.unbind(0), w_hh.t()
        for t in range(len(dh) - 1, -1, -1):
            torch.mul(dh[t], s[t], out=dp[t])
            if t > 0:
                dh[t - 1].addmm_(w_t, dp[t])
        return _param_grads(d_pre, None, x_tm, states, w_ih, ctx.needs_input_grad)


class GRULayer(torch.autograd.Function):
    """One ``nn.GRU`` layer (gates r, z, n), batch first, zero initial state.

    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h.
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):  # noqa: ANN001, ANN205
        x_tm = x.transpose(0, 1).contiguous()
        steps, batch, _ = x_tm.shape
        hid = w_hh.shape[1]
        # b_hr and b_hz only ever add to the input part; b_hn sits inside r * (...).
        zeros = b_hh.new_zeros(hid)
        gi = _input_projection(x_tm, w_ih, b_ih + torch.cat([b_hh[: 2 * hid], zeros]))
        rec_bias = torch.cat([zeros, zeros, b_hh[2 * hid :]]).view(-1, 1)
        gh = x.new_empty(steps, 3 * hid, batch)  # W_hh h (+ b_hn) per step
        rz = x.new_empty(steps, 2 * hid, batch)  # activated r, z
        n = x.new_empty(steps, hid, batch)
        states = x.new_zeros(steps + 1, hid, batch)
        diff = x.new_empty(hid, batch)
        gi_rz, gi_n = gi[:, : 2 * hid].unbind(0), gi[:, 2 * hid :].unbind(0)
        gh_all, gh_rz, gh_n = gh.unbind(0), gh[:, : 2 * hid].unbind(0), gh[:, 2 * hid :].unbind(0)
        rz_t, r, z = rz.unbind(0), rz[:, :hid].unbind(0), rz[:, hid:].unbind(0)
        n_t, h = n.unbind(0), states.unbind(0)
        for t in range(steps):
            torch.addmm(rec_bias, w_hh, h[t], out=gh_all[t])
            torch.add(gi_rz[t], gh_rz[t], out=rz_t[t]).sigmoid_()
            torch.addcmul(gi_n[t], r[t], gh_n[t], out=n_t[t]).tanh_()
            torch.sub(h[t], n_t[t], out=diff)
            torch.addcmul(n_t[t], z[t], diff, out=h[t + 1])
        ctx.save_for_backward(x_tm, w_ih, w_hh, states, rz, n, gh[:, 2 * hid :])
        return _batch_first(states)

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out):  # noqa: ANN001, ANN205
        x_tm, w_ih, w_hh, states, rz, n, gh_n = ctx.saved_tensors
        hid = w_hh.shape[1]
        r, z = rz[:, :hid], rz[:, hid:]
        # Per unit of dL/dh_t, for all steps at once: d pre_n, and the recurrent
        # pre-activation gradients [d pre_r, d pre_z, r * d pre_n].
        n_slope = (1.0 - z) * (1.0 - n * n)
        rec_slope = torch.cat([n_slope * gh_n * r * (1.0 - r), (states[:-1] - n) * z * (1.0 - z), n_slope * r], 1)
        d_h = _unit_major(d_out)  # becomes the total dL/dh_t per step
        d_gh = torch.empty_like(rec_slope)  # (T, 3H, B)
        dh, dg, k, zt, w_t = d_h.unbind(0), d_gh.unbind(0), rec_slope.unbind(0), z.unbind(0), w_hh.t()
        for t in range(len(dh) - 1, -1, -1):
            torch.mul(dh[t].unsqueeze(0), k[t].view(3, hid, -1), out=dg[t].view(3, hid, -1))
            if t > 0:
                dh[t - 1].addmm_(w_t, dg[t]).addcmul_(dh[t], zt[t])
        d_gi = d_gh.clone()
        torch.mul(d_h, n_slope, out=d_gi[:, 2 * hid :])
        return _param_grads(d_gi, d_gh, x_tm, states, w_ih, ctx.needs_input_grad)


LAYER_FUNCTIONS: dict[str, type[torch.autograd.Function]] = {"rnn": TanhRNNLayer, "gru": GRULayer}


def recurrent_layer(cell: str, x: torch.Tensor, w_ih, w_hh, b_ih, b_hh) -> torch.Tensor:  # noqa: ANN001
    """One recurrent layer over batch-first ``x`` (B, T, F) from zero state -> (B, T, H)."""
    return LAYER_FUNCTIONS[cell].apply(x, w_ih, w_hh, b_ih, b_hh)


def fast_path_supported(model: StackedRNN) -> bool:
    """Whether ``fast_forward`` computes ``model.forward`` exactly for this model."""
    config = model.config
    rnn_modules = [model.rnn] if model.fused else list(model.layers)
    return (
        config.cell in FAST_CELLS
        and (config.dropout == 0.0 or config.depth == 1)
        and all(m.bias and not m.bidirectional and m.batch_first and m.proj_size == 0 for m in rnn_modules)
        and all(getattr(m, "nonlinearity", "tanh") == "tanh" for m in rnn_modules)
        and all(p.device.type == "cpu" for p in model.parameters())
    )


def _module_layer(cell: str, module: nn.RNNBase, k: int, x: torch.Tensor) -> torch.Tensor:
    weights = (getattr(module, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    return recurrent_layer(cell, x, *weights)


def fast_forward(model: StackedRNN, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` for windows (B, T, F) -> (B,), recurrent layers by hand-written BPTT."""
    if not fast_path_supported(model):
        raise ValueError(f"fast CPU path does not support {model.config}")
    cell = model.config.cell
    h = x  # (B, T, F)
    if model.fused:
        for k in range(model.config.depth):
            h = _module_layer(cell, model.rnn, k, h)  # (B, T, H)
    else:
        last = len(model.layers) - 1
        for i, (layer, norm) in enumerate(zip(model.layers, model.norms, strict=True)):
            h = _module_layer(cell, layer, 0, h)
            if isinstance(norm, nn.BatchNorm1d):
                h = norm(h.transpose(1, 2)).transpose(1, 2)  # stats over (B, T) per channel
            else:
                h = norm(h)  # stats over H per (sample, step)
            if i < last:
                h = model.drop(h)
    return model.head(h[:, -1]).squeeze(-1)
