"""Hand-written backprop-through-time for StackedRNN's recurrent layers on CPU.

On CPU, ``nn.RNN``/``nn.GRU`` training is driven by autograd one small op at a time: a
batch of 64 windows x 60 steps records thousands of autograd nodes per layer and
accumulates the weight gradients step by step. Here each recurrent layer is one
``torch.autograd.Function``:

* forward (no autograd): the input projection for all steps is one batched matmul; each
  step is one ``addmm`` against ``W_hh`` plus a few in-place elementwise ops that write
  into preallocated (T, units, B) storage;
* backward: per step only the hidden-state gradient recurrence (a few elementwise ops and
  one (H, G*H) x (G*H, B) matmul) runs, storing the pre-activation gradients, whose local
  derivatives were formed for all steps at once; the weight, bias and input gradients are
  each one batched matmul (or sum) over all steps.

Layers take and return (T, units, B) tensors, so stacked layers and BatchNorm between them
pass activations on without transposing them; ``fast_forward`` converts only the input
windows and the last step for the head.

``fast_forward`` computes exactly ``StackedRNN.forward`` (same parameters, same norm
modules, so BatchNorm running statistics update as usual) with these layers.
``fast_path_supported`` says when it applies; callers fall back to ``model(x)`` otherwise.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from seqlab.models.rnn import StackedRNN

# LSTM layers keep torch's kernels (oneDNN's fused RNN on CPU) and only change layout: run
# time-major, they skip batch_first's transposes and BatchNorm/LayerNorm read contiguous
# (T, B, H). A hand-written LSTM in this module's layout (reordered gates, bulk weight
# gradients) took 32-36 ms per forward+backward of a 2-layer batch against oneDNN's
# 16-26 ms (2 threads, B=64, T=60, H=64); torch.compile of an unrolled cell took 32-43 ms
# after a 100 s compile.
HAND_WRITTEN_CELLS: tuple[str, ...] = ("rnn", "gru")
FAST_CELLS: tuple[str, ...] = (*HAND_WRITTEN_CELLS, "lstm")

# Layout: every tensor a layer takes, keeps or returns is time-major and unit-major,
# (T, units, B): W_hh @ h_t gives each step's gates as contiguous (units, B) row blocks, so
# every elementwise op of the recurrence runs on contiguous memory (ops on column slices of
# a (B, G*H) block are several times slower on CPU) and each step needs exactly one matmul
# each way. The whole-sequence matmuls (input projection, weight and input gradients) are
# batched over T in the same layout, so no (B, T, H) <-> (T, H, B) transpose is copied
# between stacked layers: measured 15-30% of a GRU step before.


def _input_projection(x: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """All steps' input pre-activations at once: (T, F, B) -> (T, G*H, B)."""
    steps = x.shape[0]
    return torch.baddbmm(bias.view(1, -1, 1), w_ih.expand(steps, -1, -1), x)


def _param_grads(
    d_gi: torch.Tensor, d_gh: torch.Tensor, x: torch.Tensor, states: torch.Tensor,
    w_ih: torch.Tensor, needs: tuple[bool, ...],
) -> tuple[torch.Tensor | None, ...]:
    """Input, weight and bias gradients, each one batched matmul (or sum) over all steps.

    ``d_gi``/``d_gh``: (T, G*H, B) gradients of the input/recurrent pre-activations (the
    same tensor when they are equal); ``x``: (T, F, B); ``states``: (T+1, H, B), h_0 first.
    """
    d_x = d_w_ih = d_w_hh = d_b_ih = d_b_hh = None
    if needs[0]:
        d_x = torch.matmul(w_ih.t(), d_gi)  # (T, F, B)
    if needs[1]:
        d_w_ih = torch.bmm(d_gi, x.transpose(1, 2)).sum(0)
    if needs[2]:
        d_w_hh = torch.bmm(d_gh, states[:-1].transpose(1, 2)).sum(0)
    if needs[3]:
        d_b_ih = d_gi.sum((0, 2))
    if needs[4]:
        d_b_hh = d_b_ih if d_gh is d_gi and d_b_ih is not None else d_gh.sum((0, 2))
    return d_x, d_w_ih, d_w_hh, d_b_ih, d_b_hh


def _fresh(d_out: torch.Tensor) -> torch.Tensor:
    """A contiguous copy of the output gradient (backward accumulates into it)."""
    return d_out.clone(memory_format=torch.contiguous_format)


class TanhRNNLayer(torch.autograd.Function):
    """One ``nn.RNN(nonlinearity="tanh")`` layer: (T, F, B) -> (T, H, B), zero initial state."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):  # noqa: ANN001, ANN205 - autograd signature
        x = x.contiguous()
        steps, _, batch = x.shape
        pre = _input_projection(x, w_ih, b_ih + b_hh)  # both biases folded in
        states = x.new_zeros(steps + 1, w_hh.shape[1], batch)  # states[0] = h_0 = 0
        p, h = pre.unbind(0), states.unbind(0)
        for t in range(steps):
            torch.tanh(p[t].addmm_(w_hh, h[t]), out=h[t + 1])
        ctx.save_for_backward(x, w_ih, w_hh, states)
        return states[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out):  # noqa: ANN001, ANN205
        x, w_ih, w_hh, states = ctx.saved_tensors
        d_h = _fresh(d_out)  # accumulates into the total dL/dh_t per step
        slope = 1.0 - states[1:] * states[1:]  # tanh' for all steps at once
        d_pre = torch.empty_like(slope)
        dh, dp, s, w_t = d_h.unbind(0), d_pre.unbind(0), slope.unbind(0), w_hh.t()
        for t in range(len(dh) - 1, -1, -1):
            torch.mul(dh[t], s[t], out=dp[t])
            if t > 0:
                dh[t - 1].addmm_(w_t, dp[t])
        return _param_grads(d_pre, d_pre, x, states, w_ih, ctx.needs_input_grad)


class GRULayer(torch.autograd.Function):
    """One ``nn.GRU`` layer (gates r, z, n): (T, F, B) -> (T, H, B), zero initial state.

    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h.
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):  # noqa: ANN001, ANN205
        x = x.contiguous()
        steps, _, batch = x.shape
        hid = w_hh.shape[1]
        # b_hr and b_hz only ever add to the input part; b_hn sits inside r * (...).
        zeros = b_hh.new_zeros(hid)
        gi = _input_projection(x, w_ih, b_ih + torch.cat([b_hh[: 2 * hid], zeros]))
        gh = torch.cat([zeros, zeros, b_hh[2 * hid :]]).view(1, -1, 1).repeat(steps, 1, batch)
        rz = x.new_empty(steps, 2 * hid, batch)  # activated r, z
        n = x.new_empty(steps, hid, batch)
        states = x.new_zeros(steps + 1, hid, batch)
        diff = x.new_empty(hid, batch)
        gi_rz, gi_n = gi[:, : 2 * hid].unbind(0), gi[:, 2 * hid :].unbind(0)
        gh_all, gh_rz, gh_n = gh.unbind(0), gh[:, : 2 * hid].unbind(0), gh[:, 2 * hid :].unbind(0)
        rz_t, r, z = rz.unbind(0), rz[:, :hid].unbind(0), rz[:, hid:].unbind(0)
        n_t, h = n.unbind(0), states.unbind(0)
        for t in range(steps):
            gh_all[t].addmm_(w_hh, h[t])  # W_hh h (+ b_hn, filled in above)
            torch.add(gi_rz[t], gh_rz[t], out=rz_t[t]).sigmoid_()
            torch.addcmul(gi_n[t], r[t], gh_n[t], out=n_t[t]).tanh_()
            torch.sub(h[t], n_t[t], out=diff)
            torch.addcmul(n_t[t], z[t], diff, out=h[t + 1])
        ctx.save_for_backward(x, w_ih, w_hh, states, rz, n, gh[:, 2 * hid :])
        return states[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out):  # noqa: ANN001, ANN205
        x, w_ih, w_hh, states, rz, n, gh_n = ctx.saved_tensors
        hid = w_hh.shape[1]
        r, z = rz[:, :hid], rz[:, hid:]
        # Per unit of dL/dh_t, for all steps at once: d pre_n, and the recurrent
        # pre-activation gradients [d pre_r, d pre_z, r * d pre_n].
        n_slope = (1.0 - z) * (1.0 - n * n)
        rec_slope = torch.cat([n_slope * gh_n * r * (1.0 - r), (states[:-1] - n) * z * (1.0 - z), n_slope * r], 1)
        d_h = _fresh(d_out)  # becomes the total dL/dh_t per step
        d_gh = torch.empty_like(rec_slope)  # (T, 3H, B)
        dh, dg, k, zt, w_t = d_h.unbind(0), d_gh.unbind(0), rec_slope.unbind(0), z.unbind(0), w_hh.t()
        for t in range(len(dh) - 1, -1, -1):
            torch.mul(dh[t].unsqueeze(0), k[t].view(3, hid, -1), out=dg[t].view(3, hid, -1))
            if t > 0:
                dh[t - 1].addmm_(w_t, dg[t]).addcmul_(dh[t], zt[t])
        d_gi = d_gh.clone()
        torch.mul(d_h, n_slope, out=d_gi[:, 2 * hid :])
        return _param_grads(d_gi, d_gh, x, states, w_ih, ctx.needs_input_grad)


LAYER_FUNCTIONS: dict[str, type[torch.autograd.Function]] = {"rnn": TanhRNNLayer, "gru": GRULayer}


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


def fast_path_label(model: StackedRNN) -> str:
    """What trains the recurrent layers under ``fast_forward`` (recorded with each run)."""
    if model.config.cell in HAND_WRITTEN_CELLS:
        return "seqlab cpu_rnn"
    return "torch, time-major"


def _module_layer(cell: str, module: nn.RNNBase, k: int, x: torch.Tensor) -> torch.Tensor:
    """Layer ``k`` of ``module`` over time-major ``x`` (T, F, B) -> (T, H, B)."""
    weights = (getattr(module, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    return LAYER_FUNCTIONS[cell].apply(x, *weights)


def _norm_units(norm: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """``norm`` of StackedRNN applied to time- and unit-major ``h`` (T, H, B), no transposes."""
    if isinstance(norm, nn.BatchNorm1d):
        # (T, H, B) reads as BatchNorm1d's (N, C, L): per channel over all T * B values, the
        # same statistics (and running-stat updates) as the module's (B, H, T).
        return norm(h)
    if isinstance(norm, nn.LayerNorm):
        # Over the H units of each (step, sample): torch's kernel wants them innermost, and
        # one transposed copy each way beats reducing over dim 1 in place (measured 6-20%).
        return norm(h.transpose(1, 2).contiguous()).transpose(1, 2)
    return norm(h)  # nn.Identity


def _lstm_time_major(model: StackedRNN, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` with the LSTM layers run time-major by torch's own LSTM op."""
    h = x.transpose(0, 1).contiguous()  # (T, B, F)
    steps, batch, _ = h.shape

    def run(module: nn.LSTM, n_layers: int, inputs: torch.Tensor) -> torch.Tensor:
        zeros = inputs.new_zeros(n_layers, batch, module.hidden_size)
        weights = [getattr(module, f"{name}_l{k}") for k in range(n_layers)
                   for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        # The call nn.LSTM makes, with batch_first=False.
        return torch.lstm(inputs, (zeros, zeros), weights, True, n_layers, module.dropout,
                          module.training, False, False)[0]

    if model.fused:
        h = run(model.rnn, model.config.depth, h)
    else:
        last = len(model.layers) - 1
        for i, (layer, norm) in enumerate(zip(model.layers, model.norms, strict=True)):
            h = run(layer, 1, h)  # (T, B, H)
            if isinstance(norm, nn.BatchNorm1d):  # (T*B, H) is (N, C): stats over B and T
                h = norm(h.view(steps * batch, -1)).view(steps, batch, -1)
            else:
                h = norm(h)  # LayerNorm over H, innermost already
            if i < last:
                h = model.drop(h)
    return model.head(h[-1]).squeeze(-1)


def fast_forward(model: StackedRNN, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` for windows (B, T, F) -> (B,): RNN/GRU layers by hand-written BPTT,
    LSTM layers by torch's kernels, time-major."""
    if not fast_path_supported(model):
        raise ValueError(f"fast CPU path does not support {model.config}")
    cell = model.config.cell
    if cell == "lstm":
        return _lstm_time_major(model, x)
    h = x.permute(1, 2, 0)  # (T, F, B); stays time- and unit-major between layers
    if model.fused:
        for k in range(model.config.depth):
            h = _module_layer(cell, model.rnn, k, h)  # (T, H, B)
    else:
        last = len(model.layers) - 1
        for i, (layer, norm) in enumerate(zip(model.layers, model.norms, strict=True)):
            h = _module_layer(cell, layer, 0, h)
            h = _norm_units(norm, h)
            if i < last:
                h = model.drop(h)
    return model.head(h[-1].t()).squeeze(-1)  # the last step's (H, B) -> (B, H)
