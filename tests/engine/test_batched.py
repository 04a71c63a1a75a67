"""Batched-weights packing: K same-architecture models as one model with a leading K axis."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqlab.engine import TrainConfig, load_checkpoint, train_config
from seqlab.engine.batched import batchable_key, train_pack_batched
from seqlab.engine.pack_plan import pack_key, plan_packs
from seqlab.models.batched import BatchedStackedRNN
from seqlab.models.rnn import CELLS, NORMS, ModelConfig, StackedRNN
from tests.engine.test_graphed import CUDA_CASES  # the same cases as the graphed engine's

TINY = {"hidden": 8, "lookback": 10, "batch_size": 32, "device": "cpu"}
TIMING_FIELDS = {"seconds", "epoch_seconds", "checkpoint_path", "determinism"}
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def seeded_models(config: ModelConfig, seeds: list[int]) -> list[StackedRNN]:
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(StackedRNN(config))
    return models


def assert_results_close(batched, eager, rtol: float) -> None:
    """Every result field equal, floats (also inside lists/dicts) within ``rtol``."""
    def check(a, b, where: str) -> None:
        if isinstance(a, dict):
            assert a.keys() == b.keys(), where
            for key in a:
                check(a[key], b[key], f"{where}.{key}")
        elif isinstance(a, list):
            assert len(a) == len(b), where
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                check(x, y, f"{where}[{i}]")
        elif isinstance(a, float) and isinstance(b, float) and not (math.isnan(a) and math.isnan(b)):
            assert a == pytest.approx(b, rel=rtol, abs=1e-12), where
        else:
            assert a == b, where

    mine = {k: v for k, v in batched.to_dict().items() if k not in TIMING_FIELDS}
    theirs = {k: v for k, v in eager.to_dict().items() if k not in TIMING_FIELDS}
    check(mine, theirs, "result")


# --- the model ----------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("cell", list(CELLS))
def test_forward_matches_each_member(cell, norm, depth):
    config = ModelConfig(cell=cell, depth=depth, hidden=8, norm=norm, n_features=2)
    models = seeded_models(config, [0, 1, 2])
    batched = BatchedStackedRNN.from_models(models)
    x = torch.randn(3, 5, 7, 2, generator=torch.Generator().manual_seed(9))
    fresh = seeded_models(config, [123])[0]
    for k, model in enumerate(models):  # round trip: member k's state is model k's, exactly
        state = batched.member_state_dict(k)
        expected = model.state_dict()
        assert state.keys() == expected.keys()
        assert all(torch.equal(state[key], expected[key]) for key in state)
        fresh.load_state_dict(state)
        fresh.eval()
        model.eval()
        assert torch.equal(fresh(x[k]), model(x[k]))
    for training in (True, False):  # train: batch statistics; eval: running statistics
        batched.train(training)
        for model in models:
            model.train(training)
        out = batched(x)
        assert out.shape == (3, 5)
        expected = torch.stack([model(x[k]) for k, model in enumerate(models)])
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_batchnorm_running_stats_follow_each_member():
    config = ModelConfig(cell="gru", depth=2, hidden=6, norm="batch", n_features=1)
    models = seeded_models(config, [3, 4])
    batched = BatchedStackedRNN.from_models(models)
    x = torch.randn(2, 9, 5, 1, generator=torch.Generator().manual_seed(1)) * 3 + 1
    for _ in range(2):  # two updates: momentum applied twice
        batched(x)
        for k, model in enumerate(models):
            model(x[k])
    for k, model in enumerate(models):
        state = batched.member_state_dict(k)
        for i, norm in enumerate(model.norms):
            assert not torch.allclose(norm.running_mean, torch.zeros_like(norm.running_mean))
            torch.testing.assert_close(state[f"norms.{i}.running_mean"], norm.running_mean,
                                       rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(state[f"norms.{i}.running_var"], norm.running_var,
                                       rtol=1e-5, atol=1e-6)
            assert int(state[f"norms.{i}.num_batches_tracked"]) == int(norm.num_batches_tracked) == 2


def test_from_models_refuses_mixed_architectures_and_dropout():
    a, b = ModelConfig(hidden=8), ModelConfig(hidden=6)
    with pytest.raises(ValueError, match="differ in architecture"):
        BatchedStackedRNN.from_models(seeded_models(a, [0]) + seeded_models(b, [0]))
    with pytest.raises(ValueError, match="dropout"):
        BatchedStackedRNN(ModelConfig(depth=2, dropout=0.2), k=2)
    BatchedStackedRNN(ModelConfig(depth=1, dropout=0.2), k=2)  # no layer to drop between


# --- training equals each config alone ----------------------------------------------------

@pytest.mark.parametrize("case", [
    {"cell": "gru", "depth": 2, "norm": "batch"},
    {"cell": "lstm", "depth": 1, "norm": "none", "grad_clip": 1.0},
    {"cell": "rnn", "depth": 3, "norm": "layer", "val_fraction": 0.1},
    {"cell": "lstm", "depth": 2, "norm": "batch", "lookback": 1, "batch_size": 53},  # 5 x 53 + 54
])
def test_batched_training_equals_each_config_alone(recent_prices, case):
    configs = [TrainConfig(**{**TINY, "epochs": 3, "seed": seed, **case}) for seed in (0, 1, 2)]
    seen: list[tuple[int, int]] = []
    results = train_pack_batched(configs, recent_prices,
                                 on_epoch=lambda i, record: seen.append((i, record.epoch)))
    assert seen == [(k, epoch) for epoch in (1, 2, 3) for k in range(3)]
    for k, (config, result) in enumerate(zip(configs, results, strict=True)):
        assert result.run_key == config.run_key()
        assert result.determinism["pack"] == {"size": 3, "index": k, "mode": "batched"}
        assert result.determinism["graph"] == "eager-batched: no CUDA"
        assert_results_close(result, train_config(config, recent_prices), rtol=1e-4)


def test_per_member_clip_norms(recent_prices):
    """Members with different clip norms (one unclipped) each match their own eager run."""
    # No validation split: on the shorter train period of the default 10% split the
    # clip norm's rounding grows to 1.8e-4 by epoch 4 (validation itself is compared in
    # test_members_stop_early_on_their_own).
    base = {**TINY, "cell": "lstm", "norm": "layer", "epochs": 4, "lr": 0.003, "val_fraction": 0.0}
    configs = [TrainConfig(**base, seed=0, grad_clip=0.01), TrainConfig(**base, seed=1),
               TrainConfig(**base, seed=2, grad_clip=0.05)]
    results = train_pack_batched(configs, recent_prices)
    for config, result in zip(configs, results, strict=True):
        assert_results_close(result, train_config(config, recent_prices), rtol=1e-4)
    # The clip norms are small enough to matter: unclipped training goes elsewhere.
    unclipped = train_config(TrainConfig(**base, seed=0), recent_prices)
    assert results[0].train_loss[-1] != pytest.approx(unclipped.train_loss[-1], rel=1e-2)


def test_members_stop_early_on_their_own(recent_prices, tmp_path):
    """A member that stops early keeps its own history, best state and checkpoint."""
    base = {**TINY, "cell": "lstm", "norm": "layer", "epochs": 6, "lr": 0.05}
    configs = [TrainConfig(**base, seed=0, early_stopping_patience=1),
               TrainConfig(**base, seed=1),
               TrainConfig(**base, seed=2, early_stopping_patience=2)]
    results = train_pack_batched(configs, recent_prices, checkpoint_dir=tmp_path)
    assert [r.stopped_early for r in results] == [True, False, True]
    assert results[0].epochs_run == results[0].best_epoch + 1
    assert results[2].epochs_run == results[2].best_epoch + 2
    assert results[1].epochs_run == 6
    for config, result in zip(configs, results, strict=True):
        assert_results_close(result, train_config(config, recent_prices), rtol=1e-4)
        checkpoint = load_checkpoint(result.checkpoint_path)
        assert checkpoint.best_epoch == result.best_epoch
        assert checkpoint.best_test_loss == result.best_test_loss


# --- grouping -----------------------------------------------------------------------------

def test_batchable_key_groups_batched_packs():
    a = [TrainConfig(cell="gru", seed=s, grad_clip=c) for s, c in ((0, None), (1, 1.0), (2, None))]
    b = [TrainConfig(cell="gru", hidden=32, seed=s) for s in (0, 1)]
    c = [TrainConfig(cell="gru", lookback=60)]
    assert len({batchable_key(x) for x in a}) == 1  # seed and grad_clip may differ
    assert batchable_key(a[0])[: len(pack_key(a[0]))] == pack_key(a[0])
    mixed = [a[0], b[0], c[0], a[1], b[1], a[2]]
    assert plan_packs(mixed, 2, key=batchable_key) == [a[:2], a[2:], b, c]
    assert plan_packs(mixed, 10, key=batchable_key) == [a, b, c]
    with pytest.raises(ValueError, match="pack_size must be >= 1"):
        plan_packs(mixed, 0, key=batchable_key)


@pytest.mark.parametrize(("change", "field"), [
    ({"hidden": 6}, "hidden"), ({"norm": "layer"}, "norm"), ({"feature_set": "all"}, "feature_set"),
    ({"lr": 0.01}, "lr"), ({"epochs": 4}, "epochs"), ({"lookback": 12}, "lookback"),
])
def test_mismatched_configs_are_refused_by_name(recent_prices, change, field):
    first = TrainConfig(**{**TINY, "epochs": 3})
    other = TrainConfig(**{**TINY, "epochs": 3, "seed": 1, **change})
    with pytest.raises(ValueError, match=rf"must share {field};"):
        train_pack_batched([first, other], recent_prices)
    assert train_pack_batched([], recent_prices) == []


def test_dropout_between_layers_is_refused(recent_prices):
    configs = [TrainConfig(**{**TINY, "epochs": 1, "depth": 2, "dropout": 0.2, "seed": s})
               for s in (0, 1)]
    with pytest.raises(ValueError, match="dropout"):
        train_pack_batched(configs, recent_prices)


# --- CUDA only ----------------------------------------------------------------------------


@cuda_only
@pytest.mark.parametrize("case", CUDA_CASES)
@pytest.mark.parametrize(("tf32", "rtol"), [("0", 1e-4), ("1", 5e-3)])
def test_captured_batched_matches_eager_on_cuda(recent_prices, case, tf32, rtol, monkeypatch):
    # Eager runs cuDNN's RNN kernels, TF32 by default; batched runs fp32 matmuls. In full
    # fp32 they agree to 1e-4; with TF32 they drifted up to 2.0e-3 relative in 4 epochs
    # (both measured on an H200, torch 2.11).
    monkeypatch.setenv("SEQLAB_CUDA_TF32", tf32)
    configs = [TrainConfig(**{**TINY, "device": "cuda", "epochs": 4, "seed": s, **case})
               for s in (0, 1, 2)]
    results = train_pack_batched(configs, recent_prices)
    for config, result in zip(configs, results, strict=True):
        assert result.determinism["graph"] == "captured"
        eager = train_config(config, recent_prices)
        for name in ("train_loss", "test_loss", "val_loss"):
            np.testing.assert_allclose(getattr(result, name), getattr(eager, name), rtol=rtol)
        assert eager.determinism["cudnn.allow_tf32"] is (tf32 == "1")
        if tf32 == "0":
            assert result.best_epoch == eager.best_epoch


@cuda_only
def test_captured_batched_matches_eager_batched_on_cuda(recent_prices):
    """The graph replays the same static-buffer steps the uncaptured run takes."""
    from seqlab.engine.batched import BatchedRun
    from seqlab.engine.captured import DeviceData
    from seqlab.features.windows import build_features

    configs = [TrainConfig(**{**TINY, "device": "cuda", "epochs": 3, "seed": s,
                              "cell": "gru", "norm": "batch", "grad_clip": 0.5}) for s in (0, 1)]
    data = build_features(recent_prices, configs[0].feature_spec())
    device = torch.device("cuda")
    losses = []
    for use_graphs in (True, False):
        run = BatchedRun(configs, data.n_features, DeviceData.from_features(data, device), device)
        run.prepare(use_graphs=use_graphs)
        assert run.captured == use_graphs
        losses.append([run.run_epoch().tolist() for _ in range(3)])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
