"""Fused packs: a grid's mix of cells, depths, norms and feature sets trained as one model.

Without CUDA the recurrence kernels run in Triton's interpreter (tests/conftest.py), so
these are the equality tests of the issue on small shapes; on a GPU the same tests run
the compiled kernels inside a captured CUDA graph.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from seqlab.engine import TrainConfig, load_checkpoint, train_config
from seqlab.engine.fused import eval_chunk, fusable_key, fused_blocker, train_pack_fused
from seqlab.grid.plan import group_key
from seqlab.models import triton_rnn
from tests.engine.test_batched import assert_results_close

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
KERNELS_MISSING = triton_rnn.device_unsupported(torch.device(DEVICE))
# 160 real days at lookback 5: 104 training windows, 3 batches of 32 and one of 8.
SMALL = {"hidden": 16, "lookback": 5, "batch_size": 32, "device": DEVICE, "epochs": 3}
# Every cell x norm x depth 1-3 in one pack, the feature sets in turn (inputs 1, 6 and 4
# wide), some members clipped and one stopping early: each must train as it trains alone.
MIX = [{"cell": cell, "norm": norm, "depth": depth, "feature_set": features,
        **({"grad_clip": 0.05} if i % 5 == 2 else {}),
        **({"early_stopping_patience": 1} if i == 4 else {})}
       for i, ((cell, norm, depth), features) in enumerate(zip(
           itertools.product(("rnn", "gru", "lstm"), ("none", "batch", "layer"), (1, 2, 3)),
           itertools.cycle(("close", "all", "ohlc"))))]

pytestmark = pytest.mark.usefixtures("one_torch_thread")
needs_kernels = pytest.mark.skipif(KERNELS_MISSING is not None, reason=str(KERNELS_MISSING))


@pytest.fixture(autouse=True)
def full_fp32(monkeypatch):
    monkeypatch.setenv("SEQLAB_CUDA_TF32", "0")  # compared with eager fp32 on a GPU too
    if torch.cuda.is_available():
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


@pytest.fixture(scope="module")
def short_prices(coincodex_prices):
    return coincodex_prices.tail(160)


@needs_kernels
def test_a_mixed_pack_trains_each_member_as_it_trains_alone(short_prices, tmp_path):
    """Losses, selected epoch, USD metrics and predictions within 1e-4 of each eager run."""
    configs = [TrainConfig(**SMALL, **case, seed=seed) for seed, case in enumerate(MIX)]
    seen: list[tuple[int, int]] = []
    results = train_pack_fused(configs, short_prices, checkpoint_dir=tmp_path,
                               on_epoch=lambda i, record: seen.append((i, record.epoch)))
    assert sorted(seen) == sorted({(i, e) for i, r in enumerate(results)
                                   for e in range(1, r.epochs_run + 1)})
    # The best state kept in bulk is the best epoch's, not the last one's.
    assert any(r.best_epoch < r.epochs_run for r in results)
    for k, (config, result) in enumerate(zip(configs, results, strict=True)):
        assert result.run_key == config.run_key()
        assert result.determinism["pack"] == {"size": len(MIX), "index": k, "mode": "fused"}
        assert result.determinism["recurrence"].startswith("triton")
        assert result.determinism["precision"] == "fp32"  # SEQLAB_CUDA_TF32=0 (none on a CPU)
        assert "fused_refused" not in result.determinism
        alone = train_config(config, short_prices)
        assert_results_close(result, alone, rtol=1e-4)
        checkpoint = load_checkpoint(result.checkpoint_path)
        assert checkpoint.best_epoch == result.best_epoch


@needs_kernels
def test_members_differing_only_in_seed_still_differ(short_prices):
    """Rows are not shared: two seeds of one architecture end in different places."""
    configs = [TrainConfig(**{**SMALL, "epochs": 2}, cell="gru", seed=seed) for seed in (0, 1)]
    first, second = train_pack_fused(configs, short_prices)
    assert first.train_loss != second.train_loss


def test_what_cannot_fuse_trains_as_stream_packs_and_says_why(short_prices):
    configs = [TrainConfig(**{**SMALL, "hidden": 12, "epochs": 2}, cell=cell, seed=0)
               for cell in ("lstm", "rnn")]
    results = train_pack_fused(configs, short_prices)
    for config, result in zip(configs, results, strict=True):
        assert "hidden 12 is not a power of two" in result.determinism["fused_refused"]
        assert result.determinism["pack"]["mode"] != "fused"
        assert_results_close(result, train_config(config, short_prices), rtol=1e-4)


def test_fusion_needs_shared_lr_and_hidden_but_not_architecture():
    base = TrainConfig(**SMALL)
    mixed = [TrainConfig(**SMALL, cell="rnn", depth=3, norm="batch", feature_set="all", seed=7),
             base]
    assert fusable_key(mixed[0]) == fusable_key(base)
    assert group_key(mixed[0], "fused") == group_key(base, "fused")
    assert fusable_key(TrainConfig(**{**SMALL, "lr": 0.01})) != fusable_key(base)
    device = torch.device(DEVICE)
    assert "lr" in fused_blocker([base, TrainConfig(**{**SMALL, "lr": 0.01})], device)
    assert "dropout" in fused_blocker([TrainConfig(**SMALL, depth=2, dropout=0.1)], device)


def test_without_usable_kernels_the_pack_falls_back(short_prices, monkeypatch):
    monkeypatch.setattr(triton_rnn, "device_unsupported", lambda device: "triton is not importable")
    configs = [TrainConfig(**{**SMALL, "epochs": 1}, cell="lstm", seed=s) for s in (0, 1)]
    results = train_pack_fused(configs, short_prices)
    assert [r.determinism["fused_refused"] for r in results] == ["triton is not importable"] * 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_captured_fused_pack_with_tf32_stays_near_eager(short_prices, monkeypatch):
    """The training default on a GPU: TF32 dots in a captured graph, within 1e-2 of eager."""
    monkeypatch.setenv("SEQLAB_CUDA_TF32", "1")
    configs = [TrainConfig(**SMALL, **case, seed=seed) for seed, case in enumerate(MIX)]
    for config, result in zip(configs, train_pack_fused(configs, short_prices), strict=True):
        assert result.determinism["graph"] == "captured"
        assert result.determinism["precision"] == "tf32" and result.determinism["matmul.allow_tf32"]
        assert result.determinism["recurrence"] == "triton (compiled, tf32)"
        alone = train_config(config, short_prices)
        assert result.train_loss == pytest.approx(alone.train_loss, rel=1e-2)


@pytest.mark.parametrize(("n", "k"), [(1100, 72), (1100, 216), (36, 4), (5, 3), (550, 1)])
def test_evaluation_passes_fill_whole_blocks(n, k):
    """Equal passes of whole 16-row blocks within the budget: one part-filled block at most
    (chunks of 8192 // K windows left one per pass, 10 passes of 113 at K = 72)."""
    budget, block = 8192, 16
    chunk = eval_chunk(n, k, budget, block)
    passes = -(-n // chunk)
    assert chunk % block == 0 and k * chunk <= max(budget, k * block)
    sizes = [min(chunk, n - start) for start in range(0, n, chunk)]
    assert sum(size % block != 0 for size in sizes) == (1 if n % block else 0)
    assert passes == -(-n // max(block, budget // k // block * block))  # no more passes than needed
