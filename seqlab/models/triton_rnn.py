"""Persistent Triton kernels for K independent recurrent layers: forward and BPTT.

One program per (model, block of batch rows) loads its model's recurrent weights once,
keeps them on-chip and loops over all time steps inside the kernel, so a layer of K
models is one launch forward and one backward instead of T launches per model (the
FlashRNN idea of block-diagonal recurrent weights: many small independent RNNs).
Input projections are not here: they are one batched matmul done by the caller, whose
gradient torch's autograd takes care of. The backward kernel writes the gate
pre-activation gradients; the recurrent weight gradient is then one batched matmul over
all steps (``d_hidden^T @ h_prev``).

The kernels are plain functions until :func:`kernels` wraps them in ``triton.jit``: compiled
for CUDA tensors, or, when ``TRITON_INTERPRET=1`` was set before triton was first imported,
run by Triton's interpreter (numpy, slow) on CPU tensors, which is how the test suite
checks them on machines without a GPU. Shapes: hidden a power of two in
[16, 64], equal for all K models of a launch (``tl.dot`` needs blocks of at least 16).

Saved for backward per step: LSTM i, f, g, o (activated) and c; GRU r, z, n and
``h W_hn^T + b_hn``; RNN nothing but its output.
"""

from __future__ import annotations

import functools
import os

import torch

from seqlab.models.cells import GATES
from seqlab.models.recurrence import tf32_enabled

try:
    import triton
    import triton.language as tl
except Exception:  # a missing or broken install: triton_missing() says why
    triton = tl = None

CELL_CODES = {"rnn": 0, "gru": 1, "lstm": 2}
SAVED = {"rnn": 0, "gru": 4, "lstm": 5}  # saved blocks of H per step
# Above 64 a program's recurrent weights outgrow on-chip memory: compiled for sm_90, hidden
# 128 needs 264 KiB of shared memory for LSTM's forward and 320-408 KiB for GRU's and LSTM's
# backward, over the 227 KiB a block may have (benchmarks/bench_kernels.py).
MIN_HIDDEN, MAX_HIDDEN = 16, 64


def triton_missing() -> str | None:
    """Why the Triton kernels cannot run in this environment (None: they can)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception as error:  # ImportError, or a broken install raising anything
        return f"triton is not importable ({type(error).__name__}: {error})"
    return None


def hidden_unsupported(hidden: int) -> str | None:
    """Why a hidden size cannot use the kernels (None: it can)."""
    if hidden < MIN_HIDDEN or hidden > MAX_HIDDEN or hidden & (hidden - 1):
        return (f"hidden {hidden} is not a power of two in [{MIN_HIDDEN}, {MAX_HIDDEN}] "
                "(the fused kernels' tile sizes)")
    return None


def _forward(xp_ptr, whh_ptr, bhh_ptr, y_ptr, saved_ptr, T, B,
             H: tl.constexpr, G: tl.constexpr, S: tl.constexpr, CELL: tl.constexpr,
             SAVE: tl.constexpr, BLOCK_B: tl.constexpr, PRECISION: tl.constexpr):
    k = tl.program_id(0).to(tl.int64)
    rows = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, H)
    mask = (rows < B)[:, None]
    # Gate g's W_hh^T as an (H_in, H_out) tile: element [i, j] is W_hh[g*H + j, i].
    w = whh_ptr + k * (G * H * H) + cols[:, None] + cols[None, :] * H
    bias = bhh_ptr + k * (G * H) + cols[None, :]
    x_at = xp_ptr + rows[:, None] * (G * H) + cols[None, :]
    y_at = y_ptr + rows[:, None] * H + cols[None, :]
    s_at = saved_ptr + rows[:, None] * (S * H) + cols[None, :]
    h = tl.zeros((BLOCK_B, H), dtype=tl.float32)
    c = tl.zeros((BLOCK_B, H), dtype=tl.float32)
    if CELL == 0:
        w0 = tl.load(w)
        b0 = tl.load(bias)
        for t in range(T):
            step = (k * T + t) * B
            x0 = tl.load(x_at + step * (G * H), mask=mask, other=0.0)
            pre = x0 + tl.dot(h, w0, input_precision=PRECISION) + b0
            h = 2.0 * tl.sigmoid(2.0 * pre) - 1.0  # tanh
            tl.store(y_at + step * H, h, mask=mask)
    elif CELL == 1:
        w_r = tl.load(w)
        w_z = tl.load(w + H * H)
        w_n = tl.load(w + 2 * H * H)
        b_r = tl.load(bias)
        b_z = tl.load(bias + H)
        b_n = tl.load(bias + 2 * H)
        for t in range(T):
            step = (k * T + t) * B
            x = x_at + step * (G * H)
            x_r = tl.load(x, mask=mask, other=0.0)
            x_z = tl.load(x + H, mask=mask, other=0.0)
            x_n = tl.load(x + 2 * H, mask=mask, other=0.0)
            r = tl.sigmoid(x_r + tl.dot(h, w_r, input_precision=PRECISION) + b_r)
            z = tl.sigmoid(x_z + tl.dot(h, w_z, input_precision=PRECISION) + b_z)
            h_n = tl.dot(h, w_n, input_precision=PRECISION) + b_n
            n = 2.0 * tl.sigmoid(2.0 * (x_n + r * h_n)) - 1.0
            h = (1.0 - z) * n + z * h
            tl.store(y_at + step * H, h, mask=mask)
            if SAVE:
                s = s_at + step * (S * H)
                tl.store(s, r, mask=mask)
                tl.store(s + H, z, mask=mask)
                tl.store(s + 2 * H, n, mask=mask)
                tl.store(s + 3 * H, h_n, mask=mask)
    else:
        w_i = tl.load(w)
        w_f = tl.load(w + H * H)
        w_g = tl.load(w + 2 * H * H)
        w_o = tl.load(w + 3 * H * H)
        b_i = tl.load(bias)
        b_f = tl.load(bias + H)
        b_g = tl.load(bias + 2 * H)
        b_o = tl.load(bias + 3 * H)
        for t in range(T):
            step = (k * T + t) * B
            x = x_at + step * (G * H)
            i = tl.sigmoid(tl.load(x, mask=mask, other=0.0)
                           + tl.dot(h, w_i, input_precision=PRECISION) + b_i)
            f = tl.sigmoid(tl.load(x + H, mask=mask, other=0.0)
                           + tl.dot(h, w_f, input_precision=PRECISION) + b_f)
            g = 2.0 * tl.sigmoid(2.0 * (tl.load(x + 2 * H, mask=mask, other=0.0)
                                        + tl.dot(h, w_g, input_precision=PRECISION) + b_g)) - 1.0
            o = tl.sigmoid(tl.load(x + 3 * H, mask=mask, other=0.0)
                           + tl.dot(h, w_o, input_precision=PRECISION) + b_o)
            c = f * c + i * g
            h = o * (2.0 * tl.sigmoid(2.0 * c) - 1.0)
            tl.store(y_at + step * H, h, mask=mask)
            if SAVE:
                s = s_at + step * (S * H)
                tl.store(s, i, mask=mask)
                tl.store(s + H, f, mask=mask)
                tl.store(s + 2 * H, g, mask=mask)
                tl.store(s + 3 * H, o, mask=mask)
                tl.store(s + 4 * H, c, mask=mask)


def _backward(dy_ptr, whh_ptr, y_ptr, saved_ptr, dx_ptr, dh_ptr, T, B,
              H: tl.constexpr, G: tl.constexpr, S: tl.constexpr, CELL: tl.constexpr,
              BLOCK_B: tl.constexpr, PRECISION: tl.constexpr):
    """Backpropagation through time, last step first. ``dx`` receives the gradient of the
    projected input per gate; ``dh`` that of ``h W_hh^T + b_hh`` (differs from ``dx`` only
    in GRU's n gate, where the recurrent part is scaled by r)."""
    k = tl.program_id(0).to(tl.int64)
    rows = tl.program_id(1) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, H)
    mask = (rows < B)[:, None]
    # Gate g's W_hh as an (H_out, H_in) tile: d h_prev = d_pre @ W_g.
    w = whh_ptr + k * (G * H * H) + cols[:, None] * H + cols[None, :]
    g_at = rows[:, None] * (G * H) + cols[None, :]
    y_at = y_ptr + rows[:, None] * H + cols[None, :]
    s_at = saved_ptr + rows[:, None] * (S * H) + cols[None, :]
    dh = tl.zeros((BLOCK_B, H), dtype=tl.float32)
    dc = tl.zeros((BLOCK_B, H), dtype=tl.float32)
    if CELL == 0:
        w0 = tl.load(w)
        for s in range(T):
            t = T - 1 - s
            step = (k * T + t) * B
            dh += tl.load(dy_ptr + rows[:, None] * H + cols[None, :] + step * H, mask=mask, other=0.0)
            h = tl.load(y_at + step * H, mask=mask, other=0.0)
            d0 = dh * (1.0 - h * h)
            tl.store(dx_ptr + step * (G * H) + g_at, d0, mask=mask)
            dh = tl.dot(d0, w0, input_precision=PRECISION)
    elif CELL == 1:
        w_r = tl.load(w)
        w_z = tl.load(w + H * H)
        w_n = tl.load(w + 2 * H * H)
        for s in range(T):
            t = T - 1 - s
            step = (k * T + t) * B
            before = (k * T + tl.maximum(t - 1, 0)) * B
            dh += tl.load(dy_ptr + rows[:, None] * H + cols[None, :] + step * H, mask=mask, other=0.0)
            sv = s_at + step * (S * H)
            r = tl.load(sv, mask=mask, other=0.0)
            z = tl.load(sv + H, mask=mask, other=0.0)
            n = tl.load(sv + 2 * H, mask=mask, other=0.0)
            h_n = tl.load(sv + 3 * H, mask=mask, other=0.0)
            # Step 0 reads step 0's row (a valid address) and discards it: h_{-1} is 0.
            h_prev = tl.where(t > 0, tl.load(y_at + before * H, mask=mask, other=0.0), 0.0)
            d_n = dh * (1.0 - z) * (1.0 - n * n)
            d_z = dh * (h_prev - n) * z * (1.0 - z)
            d_r = d_n * h_n * r * (1.0 - r)
            d_hn = d_n * r
            gx = dx_ptr + step * (G * H) + g_at
            tl.store(gx, d_r, mask=mask)
            tl.store(gx + H, d_z, mask=mask)
            tl.store(gx + 2 * H, d_n, mask=mask)
            gh = dh_ptr + step * (G * H) + g_at
            tl.store(gh, d_r, mask=mask)
            tl.store(gh + H, d_z, mask=mask)
            tl.store(gh + 2 * H, d_hn, mask=mask)
            dh = (dh * z + tl.dot(d_r, w_r, input_precision=PRECISION)
                  + tl.dot(d_z, w_z, input_precision=PRECISION)
                  + tl.dot(d_hn, w_n, input_precision=PRECISION))
    else:
        w_i = tl.load(w)
        w_f = tl.load(w + H * H)
        w_g = tl.load(w + 2 * H * H)
        w_o = tl.load(w + 3 * H * H)
        for s in range(T):
            t = T - 1 - s
            step = (k * T + t) * B
            before = (k * T + tl.maximum(t - 1, 0)) * B
            dh += tl.load(dy_ptr + rows[:, None] * H + cols[None, :] + step * H, mask=mask, other=0.0)
            sv = s_at + step * (S * H)
            i = tl.load(sv, mask=mask, other=0.0)
            f = tl.load(sv + H, mask=mask, other=0.0)
            g = tl.load(sv + 2 * H, mask=mask, other=0.0)
            o = tl.load(sv + 3 * H, mask=mask, other=0.0)
            c = tl.load(sv + 4 * H, mask=mask, other=0.0)
            c_prev = tl.where(t > 0, tl.load(s_at + before * (S * H) + 4 * H, mask=mask, other=0.0),
                              0.0)
            tanh_c = 2.0 * tl.sigmoid(2.0 * c) - 1.0
            dc += dh * o * (1.0 - tanh_c * tanh_c)
            d_i = dc * g * i * (1.0 - i)
            d_f = dc * c_prev * f * (1.0 - f)
            d_g = dc * i * (1.0 - g * g)
            d_o = dh * tanh_c * o * (1.0 - o)
            dc = dc * f
            gx = dx_ptr + step * (G * H) + g_at
            tl.store(gx, d_i, mask=mask)
            tl.store(gx + H, d_f, mask=mask)
            tl.store(gx + 2 * H, d_g, mask=mask)
            tl.store(gx + 3 * H, d_o, mask=mask)
            dh = (tl.dot(d_i, w_i, input_precision=PRECISION)
                  + tl.dot(d_f, w_f, input_precision=PRECISION)
                  + tl.dot(d_g, w_g, input_precision=PRECISION)
                  + tl.dot(d_o, w_o, input_precision=PRECISION))


def interpreter_on() -> bool:
    """Whether Triton runs in interpreter mode: ``TRITON_INTERPRET=1`` was set before its
    first import, when triton.language wraps its own helpers (setting it later is not
    enough, so the helpers are asked, not the environment)."""
    if triton is None:
        return False
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(tl.zeros, InterpretedFunction)


def device_unsupported(device: torch.device) -> str | None:
    """Why the kernels cannot run on ``device`` (None: they can)."""
    missing = triton_missing()
    if missing:
        return missing
    if device.type == "cuda":
        if interpreter_on():
            return "TRITON_INTERPRET=1 was set when triton was imported: kernels would not compile"
        return None
    if not interpreter_on():
        return (f"device {device} is not CUDA (on a CPU the kernels run only in Triton's "
                "interpreter: TRITON_INTERPRET=1 before triton is first imported)")
    return None


@functools.cache
def kernels() -> tuple:
    """(forward, backward): compiled for CUDA, or Triton's interpreter with TRITON_INTERPRET=1."""
    if triton is None:
        raise RuntimeError(triton_missing() or "triton is not importable")
    return triton.jit(_forward), triton.jit(_backward)


# Per SM an H100 / H200 has 228 KiB of shared memory, each resident block 1 KiB of it
# reserved: two blocks per SM need at most 113 KiB each.
SM_SHARED_BYTES, BLOCK_RESERVED_BYTES = 228 * 1024, 1024


def launch_options(hidden: int, cell: str = "rnn", direction: str = "forward") -> dict:
    """Batch rows per program, warps and pipeline stages: a tile ptxas fits without spilling.

    Compiled for sm_90 by ``benchmarks/bench_kernels.py``: 16 rows spill nothing with 4 warps
    up to hidden 32 and with 8 warps at 64 (LSTM forward at 64: 188 registers with 4 warps,
    128 with 8), while 32 rows spill at 64 with 4 warps (GRU, LSTM) or take 216 KiB of shared
    memory with 8 (LSTM backward). LSTM's backward at 64 takes 124-140 KiB of shared memory
    with Triton's default of 3 stages (one block per SM); 2 stages need 96-112 KiB (triton
    3.9-3.6), no spills, so two blocks share an SM and hide each other's step latency.
    ``SEQLAB_FUSED_BLOCK_B`` / ``SEQLAB_FUSED_WARPS`` / ``SEQLAB_FUSED_STAGES`` override them
    for measurements.
    """
    block = int(os.environ.get("SEQLAB_FUSED_BLOCK_B", "16"))
    warps = int(os.environ.get("SEQLAB_FUSED_WARPS", "4" if hidden <= 32 else "8"))
    options = {"BLOCK_B": block, "num_warps": warps}
    stages = os.environ.get("SEQLAB_FUSED_STAGES")
    if stages:
        options["num_stages"] = int(stages)
    elif cell == "lstm" and direction == "backward":
        options["num_stages"] = 2
    return options


def _launch_config(tensor: torch.Tensor, hidden: int, cell: str, direction: str) -> dict:
    options = launch_options(hidden, cell, direction)
    if tensor.device.type != "cuda":  # the interpreter runs a program as one numpy thread
        options.pop("num_warps")
        options.pop("num_stages", None)
    return options


def _precision() -> str:
    """The kernels' ``tl.dot`` precision: TF32 unless ``SEQLAB_CUDA_TF32=0``."""
    return "tf32" if tf32_enabled() else "ieee"


def forward(cell: str, projected: torch.Tensor, weight_hh: torch.Tensor, bias_hh: torch.Tensor,
            *, save: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs (K, T, B, H) and, with ``save``, what backward needs (K, T, B, S*H)."""
    k, t, b, _ = projected.shape
    hidden = weight_hh.shape[-1]
    y = projected.new_empty(k, t, b, hidden)
    blocks = SAVED[cell] if save else 0
    # Nothing to keep (RNN, or evaluation): a placeholder the kernel never touches.
    saved = projected.new_empty(k, t, b, blocks * hidden) if blocks else projected.new_empty(1)
    options = _launch_config(projected, hidden, cell, "forward")
    grid = (k, triton.cdiv(b, options["BLOCK_B"]))
    kernel, _ = kernels()
    kernel[grid](projected.contiguous(), weight_hh.contiguous(), bias_hh.contiguous(), y, saved,
                 t, b, H=hidden, G=GATES[cell], S=max(SAVED[cell], 1), CELL=CELL_CODES[cell],
                 SAVE=save, PRECISION=_precision(), **options)
    return y, saved


def backward(cell: str, d_output: torch.Tensor, weight_hh: torch.Tensor, output: torch.Tensor,
             saved: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of the projected input and of ``h W_hh^T + b_hh`` (the same tensor except
    for GRU), each (K, T, B, G*H)."""
    k, t, b, hidden = output.shape
    gates = GATES[cell]
    d_projected = output.new_empty(k, t, b, gates * hidden)
    d_hidden = output.new_empty(k, t, b, gates * hidden) if cell == "gru" else d_projected
    options = _launch_config(output, hidden, cell, "backward")
    grid = (k, triton.cdiv(b, options["BLOCK_B"]))
    _, kernel = kernels()
    kernel[grid](d_output.contiguous(), weight_hh.contiguous(), output, saved, d_projected,
                 d_hidden, t, b, H=hidden, G=gates, S=max(SAVED[cell], 1),
                 CELL=CELL_CODES[cell], PRECISION=_precision(), **options)
    return d_projected, d_hidden


class TritonRecurrence(torch.autograd.Function):
    """Autograd for :func:`forward`: inputs (projected, W_hh, b_hh), output (K, T, B, H)."""

    @staticmethod
    def forward(ctx, projected, weight_hh, bias_hh, cell):
        output, saved = forward(cell, projected, weight_hh, bias_hh, save=True)
        ctx.cell = cell
        ctx.save_for_backward(weight_hh, output, saved)
        return output

    @staticmethod
    def backward(ctx, d_output):
        weight_hh, output, saved = ctx.saved_tensors
        d_projected, d_hidden = backward(ctx.cell, d_output, weight_hh, output, saved)
        k, t, b, hidden = output.shape
        # d W_hh = sum over steps of d_pre(t)^T h(t-1); h(-1) is 0, so step 0 adds nothing and
        # steps 1.. pair with outputs ..T-2: two strided views, no shifted copy of the states.
        d_weight = torch.bmm(d_hidden[:, 1:].reshape(k, (t - 1) * b, -1).transpose(1, 2),
                             output[:, :-1].reshape(k, (t - 1) * b, hidden))
        return d_projected, d_weight, d_hidden.sum(dim=(1, 2)), None


def recurrence_triton(cell: str, projected: torch.Tensor, weight_hh: torch.Tensor,
                      bias_hh: torch.Tensor) -> torch.Tensor:
    """Same contract as ``seqlab.models.recurrence.recurrence_torch``, on the kernels."""
    if torch.is_grad_enabled() and (projected.requires_grad or weight_hh.requires_grad
                                    or bias_hh.requires_grad):
        return TritonRecurrence.apply(projected, weight_hh, bias_hh, cell)
    return forward(cell, projected, weight_hh, bias_hh, save=False)[0]
