"""A mixed fused pack (every cell x norm x depth 1-3, mixed input widths) equals its members."""

from __future__ import annotations

import itertools

import pytest
import torch

from seqlab.models import triton_rnn
from seqlab.models.fused import FusedPackModel
from seqlab.models.recurrence import recurrence_torch
from seqlab.models.rnn import CELLS, NORMS, ModelConfig, StackedRNN

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
KERNELS_MISSING = triton_rnn.device_unsupported(DEVICE)
RECURRENCES = {"torch": recurrence_torch, "triton": triton_rnn.recurrence_triton}

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def full_fp32(monkeypatch):
    monkeypatch.setenv("SEQLAB_CUDA_TF32", "0")


def every_architecture(hidden: int = 16) -> list[ModelConfig]:
    """All 27 cell x norm x depth (1-3) members; input widths 1, 6 and 4 in turn."""
    combos = itertools.product(CELLS, NORMS, (1, 2, 3))
    configs = [ModelConfig(cell=c, norm=n, depth=d, hidden=hidden, n_features=f)
               for (c, n, d), f in zip(combos, itertools.cycle((1, 6, 4)))]
    return sorted(configs, key=lambda c: c.depth)


def seeded(configs: list[ModelConfig]) -> list[StackedRNN]:
    models = []
    for seed, config in enumerate(configs):
        torch.manual_seed(seed)
        models.append(StackedRNN(config).to(DEVICE))
    return models


def member_windows(configs: list[ModelConfig], batch: int, steps: int) -> torch.Tensor:
    """(K, B, T, F_max): member k's own random features, zeros in the padded columns."""
    generator = torch.Generator().manual_seed(5)
    x = torch.zeros(len(configs), batch, steps, max(c.n_features for c in configs))
    for k, config in enumerate(configs):
        x[k, :, :, : config.n_features] = torch.randn(batch, steps, config.n_features,
                                                      generator=generator)
    return x.to(DEVICE)


def test_weights_round_trip_exactly():
    configs = every_architecture()
    models = seeded(configs)
    pack = FusedPackModel(configs).to(DEVICE).load_members(models)
    for k, model in enumerate(models):
        state, expected = pack.member_state_dict(k), model.state_dict()
        assert state.keys() == expected.keys()
        assert all(torch.equal(state[key], expected[key]) for key in state), configs[k]


@pytest.mark.parametrize("backend", [
    "torch",
    pytest.param("triton", marks=pytest.mark.skipif(KERNELS_MISSING is not None,
                                                    reason=str(KERNELS_MISSING))),
])
def test_outputs_and_gradients_equal_each_member(backend):
    """One training-mode step: outputs and every parameter's gradient rows equal what each
    StackedRNN computes alone; the padded input columns get exactly zero gradient."""
    configs = every_architecture()
    models = seeded(configs)
    pack = FusedPackModel(configs, RECURRENCES[backend]).to(DEVICE).load_members(models)
    x = member_windows(configs, batch=10, steps=7)
    out = pack(x)
    out.square().mean(dim=1).sum().backward()
    for k, (config, model) in enumerate(zip(configs, models, strict=True)):
        alone = model(x[k, :, :, : config.n_features])
        alone.square().mean().backward()
        torch.testing.assert_close(out[k], alone, rtol=1e-5, atol=1e-6)
        own = dict(model.named_parameters())
        mine = dict(pack.named_parameters())
        for key, name, row, columns in pack._member_keys(k):
            if key not in own:  # BatchNorm buffers
                continue
            grad = mine[name].grad[row]
            if columns is not None:
                assert torch.count_nonzero(grad[:, columns:]) == 0, (config, key)
                grad = grad[:, :columns]
            torch.testing.assert_close(grad, own[key].grad, rtol=1e-4, atol=1e-6,
                                       msg=lambda m, c=config, n=key: f"{c} {n}: {m}")


def test_batchnorm_running_statistics_follow_each_member():
    configs = [c for c in every_architecture() if c.norm == "batch"]
    models = seeded(configs)
    pack = FusedPackModel(configs).to(DEVICE).load_members(models)
    x = member_windows(configs, batch=8, steps=5)
    with torch.no_grad():
        for _ in range(2):
            pack(x)
            for k, model in enumerate(models):
                model(x[k, :, :, : configs[k].n_features])
    pack.eval()
    evaluated = pack(x)
    for k, model in enumerate(models):
        model.eval()
        state = pack.member_state_dict(k)
        for key, value in model.state_dict().items():
            torch.testing.assert_close(state[key], value, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(evaluated[k], model(x[k, :, :, : configs[k].n_features]),
                                   rtol=1e-5, atol=1e-6)


def test_pack_rules_are_refused_plainly():
    with pytest.raises(ValueError, match="hidden size"):
        FusedPackModel([ModelConfig(hidden=16), ModelConfig(hidden=32)])
    with pytest.raises(ValueError, match="sorted by depth"):
        FusedPackModel([ModelConfig(depth=2), ModelConfig(depth=1)])
    with pytest.raises(ValueError, match="dropout"):
        FusedPackModel([ModelConfig(depth=2, dropout=0.2)])
