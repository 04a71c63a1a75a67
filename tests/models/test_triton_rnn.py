"""The persistent Triton recurrence kernels against the torch reference loop.

On a machine without CUDA they run in Triton's interpreter (tests/conftest.py sets
TRITON_INTERPRET=1 before triton is imported); on a GPU the same tests compile them.
"""

from __future__ import annotations

import pytest
import torch

from seqlab.models import triton_rnn
from seqlab.models.recurrence import recurrence_torch
from seqlab.models.triton_rnn import GATES, hidden_unsupported, recurrence_triton

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(triton_rnn.device_unsupported(DEVICE) is not None,
                       reason=str(triton_rnn.device_unsupported(DEVICE))),
]


@pytest.fixture(autouse=True)
def full_fp32(monkeypatch):
    """Exact fp32 dots on a GPU too (TF32 is the training default, checked by the engine)."""
    monkeypatch.setenv("SEQLAB_CUDA_TF32", "0")


def inputs(cell: str, k: int, t: int, b: int, hidden: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    rows = GATES[cell] * hidden
    projected = torch.randn(k, t, b, rows, generator=generator)
    weight = torch.randn(k, rows, hidden, generator=generator) * (1.5 / hidden**0.5)
    bias = torch.randn(k, rows, generator=generator) * 0.5
    return [tensor.to(DEVICE).requires_grad_() for tensor in (projected, weight, bias)]


@pytest.mark.parametrize("hidden", [16, 32])
@pytest.mark.parametrize("cell", list(GATES))
def test_forward_and_bptt_equal_the_torch_loop(cell, hidden):
    """Outputs and the gradients of projected inputs, W_hh and b_hh, for 3 models at once;
    20 batch rows leave the second block of 16 (or the one block of 32) part masked."""
    projected, weight, bias = inputs(cell, k=3, t=6, b=20, hidden=hidden)
    upstream = torch.randn(3, 6, 20, hidden, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    ours = recurrence_triton(cell, projected, weight, bias)
    our_grads = torch.autograd.grad((ours * upstream).sum(), [projected, weight, bias])
    reference = recurrence_torch(cell, projected, weight, bias)
    reference_grads = torch.autograd.grad((reference * upstream).sum(), [projected, weight, bias])
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=2e-6)
    for name, mine, theirs in zip(("projected", "weight_hh", "bias_hh"), our_grads,
                                  reference_grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=2e-5, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("cell", list(GATES))
def test_models_are_independent(cell):
    """Each program reads only its model's weights: changing model 1 leaves model 0 alone."""
    projected, weight, bias = inputs(cell, k=2, t=4, b=16, hidden=16)
    with torch.no_grad():
        before = recurrence_triton(cell, projected, weight, bias)
        weight[1] += 1.0
        after = recurrence_triton(cell, projected, weight, bias)
    assert torch.equal(before[0], after[0])
    assert not torch.allclose(before[1], after[1])


def test_no_grad_calls_save_nothing_and_agree():
    projected, weight, bias = inputs("lstm", k=2, t=3, b=16, hidden=16)
    with torch.no_grad():
        plain = recurrence_triton("lstm", projected, weight, bias)
    tracked = recurrence_triton("lstm", projected, weight, bias)
    assert plain.grad_fn is None and tracked.grad_fn is not None
    assert torch.equal(plain, tracked.detach())


@pytest.mark.parametrize("hidden,ok", [(16, True), (32, True), (64, True), (8, False), (48, False),
                                       (128, False)])
def test_hidden_sizes_the_kernels_tile(hidden, ok):
    assert (hidden_unsupported(hidden) is None) == ok


def test_launch_options_give_lstm_backward_two_stages_and_the_interpreter_none(monkeypatch):
    """Two pipeline stages keep LSTM's backward at hidden 64 to two blocks per SM (checked for
    sm_90 in test_triton_compile); the interpreter takes no warps or stages."""
    assert triton_rnn.launch_options(64, "lstm", "backward")["num_stages"] == 2
    assert "num_stages" not in triton_rnn.launch_options(64, "lstm", "forward")
    assert set(triton_rnn._launch_config(torch.zeros(1), 64, "lstm", "backward")) == {"BLOCK_B"}
    monkeypatch.setenv("SEQLAB_FUSED_STAGES", "3")
    assert triton_rnn.launch_options(64, "gru", "backward")["num_stages"] == 3


def test_one_switch_sets_the_kernels_precision(monkeypatch):
    """SEQLAB_CUDA_TF32 picks the kernels' dot precision, as it does torch's matmuls and cuDNN
    (engine.runtime). The interpreter computes either in fp32: equality with TF32 on is only
    checked natively (the engine's TF32 test on a GPU)."""
    monkeypatch.setenv("SEQLAB_CUDA_TF32", "1")
    assert triton_rnn._precision() == "tf32"
    monkeypatch.setenv("SEQLAB_CUDA_TF32", "0")
    assert triton_rnn._precision() == "ieee"
