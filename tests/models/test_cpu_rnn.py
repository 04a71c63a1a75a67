"""Hand-written CPU BPTT (seqlab.models.cpu_rnn): gradients, equality with StackedRNN, training."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from seqlab.features.windows import FeatureSpec, build_features
from seqlab.models.cpu_rnn import (
    FAST_CELLS,
    HAND_WRITTEN_CELLS,
    LAYER_FUNCTIONS,
    fast_forward,
    fast_path_label,
    fast_path_supported,
)
from seqlab.models.rnn import ModelConfig, StackedRNN

MODULES = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU}


def recurrent_layer(cell: str, x: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
    """One hand-written layer over batch-first ``x`` (B, T, F) from zero state -> (B, T, H)."""
    return LAYER_FUNCTIONS[cell].apply(x.permute(1, 2, 0), *weights).permute(2, 0, 1)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def assert_close_rel(actual: torch.Tensor, expected: torch.Tensor, rel: float) -> None:
    """Max abs error within ``rel`` of the tensor's scale (elementwise rtol breaks near 0)."""
    scale = expected.abs().max().clamp_min(1e-12)
    assert (actual - expected).abs().max() <= rel * scale, (actual - expected).abs().max() / scale


def twin_models(cell: str, depth: int, norm: str, n_features: int = 2, hidden: int = 8):
    torch.manual_seed(7)
    model = StackedRNN(ModelConfig(cell=cell, depth=depth, hidden=hidden, norm=norm, n_features=n_features))
    return model, copy.deepcopy(model)


@pytest.mark.parametrize("cell", HAND_WRITTEN_CELLS)
def test_layer_gradcheck_float64(cell):
    torch.manual_seed(0)
    module = MODULES[cell](3, 5, batch_first=True).double()
    x = torch.randn(4, 6, 3, dtype=torch.float64, requires_grad=True)
    weights = (module.weight_ih_l0, module.weight_hh_l0, module.bias_ih_l0, module.bias_hh_l0)
    assert torch.autograd.gradcheck(lambda x, *w: recurrent_layer(cell, x, *w), (x, *weights))
    expected, _ = module(x)
    torch.testing.assert_close(recurrent_layer(cell, x, *weights), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", FAST_CELLS)
@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_fast_forward_equals_module_forward_and_backward(cell, depth, norm):
    reference, fast = twin_models(cell, depth, norm)
    assert fast_path_supported(fast)
    x = torch.randn(16, 12, 2, generator=torch.Generator().manual_seed(1))
    y = torch.randn(16, generator=torch.Generator().manual_seed(2))

    expected = reference(x)
    actual = fast_forward(fast, x)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)

    F.mse_loss(expected, y).backward()
    F.mse_loss(actual, y).backward()
    for (name, p_ref), p_fast in zip(reference.named_parameters(), fast.parameters(), strict=True):
        assert p_fast.grad is not None, name
        assert_close_rel(p_fast.grad, p_ref.grad, 1e-4)
    for (name, b_ref), b_fast in zip(reference.named_buffers(), fast.buffers(), strict=True):
        if b_ref.is_floating_point():
            torch.testing.assert_close(b_fast, b_ref, rtol=0, atol=1e-6, msg=name)
        else:
            assert torch.equal(b_fast, b_ref), name


def test_eval_mode_uses_running_stats():
    reference, fast = twin_models("gru", 2, "batch")
    x = torch.randn(8, 10, 2, generator=torch.Generator().manual_seed(3))
    reference(x), fast_forward(fast, x)  # one training step of running statistics
    reference.eval(), fast.eval()
    with torch.no_grad():
        torch.testing.assert_close(fast_forward(fast, x), reference(x), rtol=0, atol=1e-5)


def test_unsupported_models_are_refused():
    for cell in FAST_CELLS:  # dropout between layers would draw its masks in another layout
        model = StackedRNN(ModelConfig(cell=cell, depth=2, dropout=0.2))
        assert not fast_path_supported(model)
        with pytest.raises(ValueError, match="does not support"):
            fast_forward(model, torch.zeros(2, 3, 1))
    assert fast_path_supported(StackedRNN(ModelConfig(cell="rnn", depth=1, dropout=0.2)))
    assert fast_path_label(StackedRNN(ModelConfig(cell="gru"))) == "seqlab cpu_rnn"
    assert fast_path_label(StackedRNN(ModelConfig(cell="lstm"))) == "torch, time-major"


@pytest.mark.parametrize("depth", [1, 3])
def test_time_major_lstm_without_norms_is_bit_identical(depth):
    """The same torch.lstm call nn.LSTM makes, only without batch_first's transposes."""
    reference, fast = twin_models("lstm", depth, "none")
    assert fast.fused
    x = torch.randn(4, 5, 2)
    torch.testing.assert_close(fast_forward(fast, x), reference(x), rtol=0, atol=0)


@pytest.mark.parametrize(("cell", "norm", "rel"), [
    ("gru", "layer", 1e-4), ("rnn", "batch", 1e-4), ("gru", "none", 1e-4),
    # BatchNorm's (N, C) and (N, C, L) kernels sum in different orders, and Adam's first
    # steps (about lr * sign(grad)) magnify that for gradients near 0: measured up to
    # 7.8e-5 here and 1.3e-4 on a 16-core AVX-512 host.
    ("lstm", "batch", 5e-4),
])
def test_adam_training_on_real_windows_matches_module_path(coincodex_prices, cell, norm, rel):
    data = build_features(coincodex_prices, FeatureSpec(lookback=60))
    X, y = torch.from_numpy(data.X_train[-256:]), torch.from_numpy(data.y_train[-256:])
    reference, fast = twin_models(cell, 2, norm, n_features=data.n_features, hidden=16)
    opt_ref = torch.optim.Adam(reference.parameters(), lr=1e-3, fused=True)
    opt_fast = torch.optim.Adam(fast.parameters(), lr=1e-3, fused=True)
    losses_ref, losses_fast = [], []
    for step in range(8):
        rows = slice(32 * step, 32 * (step + 1))
        for forward, opt, losses in (
            (reference, opt_ref, losses_ref),
            (lambda xb: fast_forward(fast, xb), opt_fast, losses_fast),
        ):
            loss = F.mse_loss(forward(X[rows]), y[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert losses_ref[-1] != losses_ref[0]  # training moved the model
    for got, want in zip(losses_fast, losses_ref, strict=True):
        assert got == pytest.approx(want, rel=rel)
