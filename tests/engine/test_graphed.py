"""CUDA-graph engine and packing: fallbacks, pack planning, and equality with the eager engine."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest
import torch

from seqlab.engine import TrainConfig, make_optimizer, predict_scaled, train_config, train_one_epoch
from seqlab.engine.captured import DeviceData, capture_blocker
from seqlab.engine.checkpoint import load_checkpoint, predict_next
from seqlab.engine.graphed import GraphedRun, train_config_graphed, train_on_device
from seqlab.engine.pack_plan import choose_pack_size, plan_packs
from seqlab.engine.recording import RunHistory, assemble_result
from seqlab.engine.runtime import configure_determinism
from seqlab.engine.stream_pack import train_pack
from seqlab.features.windows import build_features
from seqlab.models.rnn import StackedRNN

TINY = {"hidden": 8, "lookback": 10, "batch_size": 32, "device": "cpu"}
TIMING_FIELDS = {"seconds", "epoch_seconds", "checkpoint_path", "determinism"}
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def comparable(result) -> dict:
    return {k: v for k, v in result.to_dict().items() if k not in TIMING_FIELDS}


def train_with_recording(config: TrainConfig, prices: pl.DataFrame, checkpoint_dir=None):
    """The eager loop driven through RunHistory/assemble_result (the graphed engine's bookkeeping)."""
    started = time.perf_counter()
    data = build_features(prices, config.feature_spec())
    device = torch.device("cpu")
    determinism = configure_determinism(device)
    torch.manual_seed(config.seed)
    model = StackedRNN(config.model_config(data.n_features))
    optimizer = make_optimizer(model, config, device)
    epoch = 0
    X, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)
    X_test, y_test = torch.from_numpy(data.X_test), torch.from_numpy(data.y_test)
    X_val, y_val = torch.from_numpy(data.X_val), torch.from_numpy(data.y_val)
    history = RunHistory(config, has_val=X_val.shape[0] > 0)
    while True:
        losses = [train_one_epoch(model, optimizer, X, y, batch_size=config.batch_size,
                                  seed=config.seed, epoch=epoch, grad_clip=config.grad_clip),
                  torch.nn.functional.mse_loss(predict_scaled(model, X_test), y_test)]
        if history.has_val:
            losses.append(torch.nn.functional.mse_loss(predict_scaled(model, X_val), y_val))
        epoch += 1
        if not history.record(torch.stack(losses).tolist(), 0.0, model):
            break
    return assemble_result(config, data, model, history, X_test, device=device,
                           determinism=determinism, started=started, checkpoint_dir=checkpoint_dir)


# --- CPU: fallback and bookkeeping -----------------------------------------------------------

def test_graphed_on_cpu_falls_back_and_equals_eager(recent_prices):
    config = TrainConfig(cell="gru", depth=2, norm="batch", epochs=3, grad_clip=1.0, **TINY)
    graphed = train_config_graphed(config, recent_prices)
    eager = train_config(config, recent_prices)
    expected = "no CUDA" if not torch.cuda.is_available() else "device cpu is not CUDA"
    assert graphed.determinism["graph"] == f"eager-fallback: {expected}"
    assert graphed.train_loss == eager.train_loss and graphed.test_loss == eager.test_loss
    assert comparable(graphed) == comparable(eager)


def test_capture_blocker_reasons():
    cuda = torch.device("cuda")  # only inspected, never used
    assert capture_blocker(TrainConfig(depth=2), cuda) is None
    assert capture_blocker(TrainConfig(depth=1, dropout=0.3), cuda) is None  # no layer to drop between
    reason = capture_blocker(TrainConfig(depth=2, dropout=0.3), cuda)
    assert reason is not None and "dropout 0.3" in reason
    assert capture_blocker(TrainConfig(), torch.device("cpu")) in {"no CUDA", "device cpu is not CUDA"}


@pytest.mark.parametrize("extra", [
    {"epochs": 3},
    {"epochs": 4, "val_fraction": 0.1, "norm": "layer", "depth": 2},
    {"epochs": 6, "early_stopping_patience": 1, "lr": 0.05},
    {"epochs": 5, "lr": 1e30},  # diverges
])
def test_recording_reproduces_the_eager_result(recent_prices, tmp_path, extra):
    config = TrainConfig(**{**TINY, **extra})
    mine = train_with_recording(config, recent_prices, checkpoint_dir=tmp_path / "a")
    eager = train_config(config, recent_prices, checkpoint_dir=tmp_path / "b")
    assert comparable(mine) == comparable(eager)
    assert (mine.checkpoint_path is None) == (eager.checkpoint_path is None)
    if "lr" in extra and extra["lr"] > 1:
        assert mine.status == "diverged" and mine.diverged_epoch == eager.diverged_epoch
    if "early_stopping_patience" in extra:
        assert mine.stopped_early == eager.stopped_early


@pytest.mark.parametrize(("extra", "n_days"), [
    ({"cell": "lstm", "batch_size": 32}, 400),  # 299 windows: 9 full batches + 11
    ({"cell": "gru", "depth": 2, "norm": "batch", "grad_clip": 0.1, "batch_size": 23}, 400),  # 13 x 23
    ({"cell": "rnn", "norm": "layer", "batch_size": 64, "val_fraction": 0.1}, 80),  # one partial batch
    # 319 windows of one day: 5 x 53 + 54, the one-window batch folded into the one before
    ({"cell": "gru", "depth": 2, "norm": "batch", "lookback": 1, "batch_size": 53}, 400),
])
def test_static_buffer_steps_equal_eager_on_cpu(recent_prices, extra, n_days):
    """The graph's step logic (permutation buffer, device step counter, remainder step,
    summed loss, warm-up undone in place) run uncaptured must reproduce the eager losses."""
    config = TrainConfig(**{**TINY, "epochs": 3, **extra})
    prices = recent_prices.tail(n_days)
    data = build_features(prices, config.feature_spec())
    run = GraphedRun(config, data.n_features, DeviceData.from_features(data, torch.device("cpu")),
                     torch.device("cpu"))
    run.prepare(use_graphs=False)
    assert not run.captured
    assert run.n_full * run.batch + run.remainder == data.X_train.shape[0]
    losses = [run.run_epoch().tolist() for _ in range(config.epochs)]
    eager = train_config(config, prices)
    expected = [[t, v] + ([eager.val_loss[i]] if eager.val_loss else [])
                for i, (t, v) in enumerate(zip(eager.train_loss, eager.test_loss, strict=True))]
    # rtol 1e-5: on CPU the eager engine trains RNN/GRU through cpu_rnn's hand-written
    # backward, the static-buffer steps through torch's modules (float rounding only).
    np.testing.assert_allclose(losses, expected, rtol=1e-5)


# --- pack planning ------------------------------------------------------------------------

def test_plan_packs_groups_compatible_configs_in_order():
    a = [TrainConfig(cell=c, seed=s) for c in ("rnn", "lstm", "gru") for s in (0, 1)]
    b = [TrainConfig(lookback=60, seed=s) for s in (0, 1, 2)]
    c = [TrainConfig(batch_size=32)]
    mixed = [a[0], b[0], a[1], c[0], a[2], b[1], a[3], a[4], b[2], a[5]]
    packs = plan_packs(mixed, 4)
    assert packs == [a[:4], a[4:], b, c]
    assert plan_packs(mixed, 100) == [a, b, c]
    assert [len(p) for p in plan_packs(a, 1)] == [1] * 6
    assert plan_packs([], 8) == []
    with pytest.raises(ValueError, match="pack_size must be >= 1"):
        plan_packs(a, 0)


def test_choose_pack_size_by_memory_and_throughput():
    mib = 2**20
    assert choose_pack_size(1000 * mib, 10 * mib) == 32  # capped by max_pack
    assert choose_pack_size(1000 * mib, 10 * mib, max_pack=64) == 64
    assert choose_pack_size(100 * mib, 10 * mib) == 8  # 80% headroom
    assert choose_pack_size(5 * mib, 10 * mib) == 1  # never below one
    measured = {1: 100.0, 8: 400.0, 32: 350.0}
    assert choose_pack_size(10_000 * mib, 10 * mib, measured) == 8
    assert choose_pack_size(10_000 * mib, 10 * mib, {8: 400.0, 32: 400.0}) == 8  # tie: smaller
    assert choose_pack_size(50 * mib, 10 * mib, {8: 400.0, 32: 500.0}) == 4  # none fits
    assert choose_pack_size(200 * mib, 10 * mib, measured) == 8
    with pytest.raises(ValueError, match="free_bytes"):
        choose_pack_size(0, 10)
    with pytest.raises(ValueError, match="measured_eps"):
        choose_pack_size(100, 1, {0: 5.0})
    with pytest.raises(ValueError, match="headroom"):
        choose_pack_size(100, 1, headroom=1.5)


def test_train_pack_on_cpu_equals_each_config_alone(recent_prices):
    configs = [
        TrainConfig(cell="lstm", depth=1, norm="none", epochs=2, seed=0, **TINY),
        TrainConfig(cell="rnn", depth=2, norm="layer", epochs=2, seed=1, feature_set="all", **TINY),
        TrainConfig(cell="gru", depth=2, norm="batch", epochs=2, seed=2, **TINY),
    ]
    seen: list[tuple[int, int]] = []
    results = train_pack(configs, recent_prices, on_epoch=lambda i, r: seen.append((i, r.epoch)))
    assert [r.run_key for r in results] == [c.run_key() for c in configs]
    for config, result in zip(configs, results, strict=True):
        alone = train_config(config, recent_prices)
        assert comparable(result) == comparable(alone)
        assert result.determinism["pack"]["mode"] == "sequential: no CUDA"
    assert seen == [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (2, 2)]
    assert train_pack([], recent_prices) == []


def test_train_pack_refuses_incompatible_configs(recent_prices):
    configs = [TrainConfig(epochs=1, **TINY), TrainConfig(epochs=2, **TINY)]
    with pytest.raises(ValueError, match="plan_packs"):
        train_pack(configs, recent_prices)


# --- CUDA only ----------------------------------------------------------------------------

CUDA_CASES = [
    {"cell": "lstm", "depth": 1, "norm": "none"},
    {"cell": "gru", "depth": 2, "norm": "batch", "grad_clip": 0.5},
    {"cell": "rnn", "depth": 2, "norm": "layer", "val_fraction": 0.1},
    {"cell": "lstm", "depth": 2, "norm": "batch", "lookback": 1, "batch_size": 53},  # 5 x 53 + 54
]


@cuda_only
@pytest.mark.parametrize("case", CUDA_CASES)
def test_graphed_matches_eager_on_cuda(recent_prices, case):
    config = TrainConfig(**{**TINY, "device": "cuda", "epochs": 4, **case})
    graphed = train_config_graphed(config, recent_prices)
    eager = train_config(config, recent_prices)
    assert graphed.determinism["graph"] == "captured"
    for name in ("train_loss", "test_loss", "val_loss"):
        np.testing.assert_allclose(getattr(graphed, name), getattr(eager, name), rtol=1e-4)
    assert graphed.best_epoch == eager.best_epoch


def _train_like_the_cli(config: TrainConfig, prices: pl.DataFrame, checkpoint_dir):
    """What `seqlab train` does after loading prices: train_on_device with an epoch printer."""
    records = []
    result = train_on_device(config, prices, checkpoint_dir=checkpoint_dir, on_epoch=records.append)
    assert [r.epoch for r in records] == list(range(1, config.epochs + 1))
    assert [r.train_loss for r in records] == result.train_loss
    checkpoint = load_checkpoint(result.checkpoint_path)
    assert checkpoint.config.to_dict() == config.to_dict()
    day, forecast = predict_next(result.checkpoint_path, prices)
    assert day > prices.get_column("date").max() and np.isfinite(forecast) and forecast > 0
    return result


def test_train_on_device_is_the_eager_engine_off_cuda(recent_prices, tmp_path):
    config = TrainConfig(**{**TINY, "epochs": 3, "cell": "gru", "depth": 2})
    result = _train_like_the_cli(config, recent_prices, tmp_path)
    assert "graph" not in result.determinism
    assert comparable(result) == comparable(train_config(config, recent_prices))


@cuda_only
@pytest.mark.parametrize("device", ["cuda", "auto"])  # `seqlab train` defaults to --device auto
def test_train_on_device_captures_a_graph_on_cuda(recent_prices, tmp_path, device):
    config = TrainConfig(**{**TINY, "device": device, "epochs": 3, "cell": "lstm", "depth": 2, "norm": "layer"})
    result = _train_like_the_cli(config, recent_prices, tmp_path)
    assert result.determinism["graph"] == "captured" and result.status == "ok"
    eager = train_config(TrainConfig(**{**config.to_dict(), "device": "cuda"}), recent_prices)
    np.testing.assert_allclose(result.test_loss, eager.test_loss, rtol=1e-4)


@cuda_only
def test_graphed_dropout_between_layers_falls_back_on_cuda(recent_prices):
    config = TrainConfig(**{**TINY, "device": "cuda", "epochs": 1, "depth": 2, "dropout": 0.2})
    assert train_config_graphed(config, recent_prices).determinism["graph"].startswith(
        "eager-fallback: dropout")


@cuda_only
def test_packed_equals_single_graphed_on_cuda(recent_prices):
    configs = [TrainConfig(**{**TINY, "device": "cuda", "epochs": 3, "seed": i, **case})
               for i, case in enumerate(c for c in CUDA_CASES if not {"val_fraction", "lookback"} & set(c))]
    packed = train_pack(configs, recent_prices)
    for config, result in zip(configs, packed, strict=True):
        alone = train_config_graphed(config, recent_prices)
        assert result.determinism["pack"]["mode"] == "streams"
        np.testing.assert_allclose(result.train_loss, alone.train_loss, rtol=1e-5)
        np.testing.assert_allclose(result.test_loss, alone.test_loss, rtol=1e-5)
