"""StackedRNN: shapes for every configuration, where the norms sit and what they normalize."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from seqlab.models.rnn import CELLS, NORMS, ModelConfig, StackedRNN, count_parameters

B, T, F, H = 8, 12, 3, 16


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(("cell", "depth", "norm"), list(itertools.product(CELLS, (1, 2, 3), NORMS)))
def test_output_shape_for_every_configuration(cell, depth, norm):
    torch.manual_seed(0)
    model = StackedRNN(ModelConfig(cell=cell, depth=depth, hidden=H, norm=norm, n_features=F))
    x = torch.randn(B, T, F)
    out = model(x)  # train mode
    assert out.shape == (B,)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (B,)
        assert model(x[:1]).shape == (1,)  # a single window works in eval mode, BatchNorm too


def test_none_uses_one_fused_module_and_norms_stack_single_layers():
    fused = StackedRNN(ModelConfig(cell="gru", depth=3, hidden=H, norm="none", n_features=F))
    assert isinstance(fused.rnn, nn.GRU) and fused.rnn.num_layers == 3
    stacked = StackedRNN(ModelConfig(cell="gru", depth=3, hidden=H, norm="layer", n_features=F))
    assert [m.num_layers for m in stacked.layers] == [1, 1, 1]
    assert len(stacked.norms) == 3
    # Same recurrent weights either way: only the norms add parameters.
    norm_params = sum(count_parameters(n) for n in stacked.norms)
    assert count_parameters(stacked) == count_parameters(fused) + norm_params


def _record_outputs(model: StackedRNN, kind: type[nn.Module]) -> list[torch.Tensor]:
    outputs: list[torch.Tensor] = []
    for module in model.modules():
        if isinstance(module, kind):
            module.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach()))
    return outputs


def _scaled_input() -> torch.Tensor:
    # Inputs with a large offset and scale so un-normalized hidden states are far from N(0, 1).
    torch.manual_seed(1)
    return torch.randn(32, T, F) * 5 + 3


@pytest.mark.parametrize("cell", list(CELLS))
def test_batchnorm_normalizes_each_channel_over_batch_and_time(cell):
    torch.manual_seed(0)
    model = StackedRNN(ModelConfig(cell=cell, depth=2, hidden=H, norm="batch", n_features=F)).train()
    outputs = _record_outputs(model, nn.BatchNorm1d)
    model(_scaled_input())
    assert len(outputs) == 2  # one after every recurrent layer
    for out in outputs:
        assert out.shape == (32, H, T)  # (B, H, T): channels second
        mean = out.mean(dim=(0, 2))  # per channel, over batch and time
        var = out.var(dim=(0, 2), unbiased=False)
        torch.testing.assert_close(mean, torch.zeros(H), atol=1e-5, rtol=0)
        torch.testing.assert_close(var, torch.ones(H), atol=1e-2, rtol=0)
        # Statistics are shared across time steps, not per step: single steps are not centred.
        assert out.mean(dim=0).abs().max() > 0.1


@pytest.mark.parametrize("cell", list(CELLS))
def test_layernorm_normalizes_each_steps_hidden_vector(cell):
    torch.manual_seed(0)
    model = StackedRNN(ModelConfig(cell=cell, depth=2, hidden=H, norm="layer", n_features=F)).train()
    outputs = _record_outputs(model, nn.LayerNorm)
    model(_scaled_input())
    assert len(outputs) == 2
    for out in outputs:
        assert out.shape == (32, T, H)
        torch.testing.assert_close(out.mean(dim=-1), torch.zeros(32, T), atol=1e-5, rtol=0)
        torch.testing.assert_close(out.var(dim=-1, unbiased=False), torch.ones(32, T), atol=1e-2, rtol=0)
        # Each hidden channel is not separately centred over the batch.
        assert out.mean(dim=(0, 1)).abs().max() > 0.1


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_norm_follows_every_recurrent_layer(norm):
    model = StackedRNN(ModelConfig(cell="lstm", depth=3, hidden=H, norm=norm, n_features=F))
    order: list[str] = []
    for name, module in model.named_modules():
        if isinstance(module, nn.LSTM | nn.BatchNorm1d | nn.LayerNorm | nn.Linear):
            module.register_forward_hook(lambda m, _i, _o, name=name: order.append(name))
    model(torch.randn(B, T, F))
    assert order == ["layers.0", "norms.0", "layers.1", "norms.1", "layers.2", "norms.2", "head"]


@pytest.mark.parametrize("norm", NORMS)
def test_dropout_only_between_layers(norm):
    x = torch.randn(B, T, F)
    single = StackedRNN(ModelConfig(depth=1, hidden=H, norm=norm, dropout=0.5, n_features=F)).train()
    torch.testing.assert_close(single(x), single(x))  # nothing to drop after the last layer
    deep = StackedRNN(ModelConfig(depth=2, hidden=H, norm=norm, dropout=0.5, n_features=F)).train()
    assert not torch.equal(deep(x), deep(x))
    deep.eval()
    torch.testing.assert_close(deep(x), deep(x))


def test_invalid_config_lists_allowed_values():
    with pytest.raises(ValueError, match="unknown cell 'transformer'; allowed: rnn, lstm, gru"):
        ModelConfig(cell="transformer")
    with pytest.raises(ValueError, match="unknown norm 'group'; allowed: none, batch, layer"):
        ModelConfig(norm="group")
    with pytest.raises(ValueError, match="depth must be >= 1, got 0"):
        ModelConfig(depth=0)
    with pytest.raises(ValueError, match="dropout must be in"):
        ModelConfig(dropout=1.0)
