"""Run identity, result frames, shard Parquet and the warehouse's run tables."""

from __future__ import annotations

from dataclasses import replace

import polars as pl
import pytest

from seqlab.engine.config import TrainConfig
from seqlab.grid.execute import train_request
from seqlab.grid.plan import plan_devices
from seqlab.grid.requests import RunOutcome, code_version, plan_requests, run_id
from seqlab.grid.results import outcome_frames, read_frames, write_frames
from seqlab.warehouse import query
from seqlab.warehouse.runs import completed_run_ids, store_run_results


@pytest.fixture(scope="module")
def trained(tmp_path_factory, coincodex_prices):
    folder = tmp_path_factory.mktemp("runs")
    prices_path = folder / "prices.parquet"
    coincodex_prices.write_parquet(prices_path)
    configs = [
        TrainConfig(cell="gru", hidden=4, epochs=2, lookback=10, seed=0),
        TrainConfig(cell="rnn", hidden=4, epochs=2, lookback=10, seed=1, norm="layer", depth=2),
    ]
    requests = plan_requests(configs, symbol="ETH", data_version="dv1", code="c1",
                             prices_path=str(prices_path), checkpoint_dir=str(folder / "ckpt"))
    outcomes = [train_request(r, "test-host") for r in requests]
    broken = RunOutcome(replace(requests[0], run_id="broken"), None, "RuntimeError: boom", "h")
    return folder, requests, outcomes, broken


def test_run_id_depends_on_config_data_code_and_symbol():
    config = TrainConfig()
    base = run_id(config, data_version="a", code="x", symbol="ETH")
    assert base == run_id(TrainConfig(), data_version="a", code="x", symbol="ETH")
    assert base != run_id(config, data_version="b", code="x", symbol="ETH")
    assert base != run_id(config, data_version="a", code="y", symbol="ETH")
    assert base != run_id(config, data_version="a", code="x", symbol="BTC")
    assert base != run_id(replace(config, seed=1), data_version="a", code="x", symbol="ETH")
    assert code_version() == code_version()


def test_outcome_frames_hold_every_epoch_and_prediction(trained):
    _, requests, outcomes, broken = trained
    frames = outcome_frames([*outcomes, broken], "grid-1")
    runs = frames.runs.sort("run_id")
    assert runs.height == 3
    assert set(runs["status"]) == {"ok", "failed"}
    failed = runs.filter(pl.col("run_id") == "broken").row(0, named=True)
    assert failed["error"] == "RuntimeError: boom" and failed["best_test_loss"] is None
    assert frames.epoch_metrics.height == 4  # 2 runs x 2 epochs; the failed run has none
    for outcome in outcomes:
        rid = outcome.request.run_id
        n_pred = frames.predictions.filter(pl.col("run_id") == rid).height
        assert n_pred == outcome.result.n_test > 0
        losses = frames.epoch_metrics.filter(pl.col("run_id") == rid).sort("epoch")
        assert losses["test_loss"].to_list() == pytest.approx(outcome.result.test_loss)
    # Both configs use close prices, lookback 10 and the same split: one shared feature key.
    assert frames.features.height == 1


def test_shard_parquet_round_trip(trained, tmp_path):
    _, _, outcomes, _ = trained
    frames = outcome_frames(outcomes, "grid-1")
    write_frames(frames, str(tmp_path / "shard-0"))
    back = read_frames(str(tmp_path / "shard-0"))
    for name in ("runs", "epoch_metrics", "predictions", "features"):
        assert getattr(back, name).equals(getattr(frames, name)), name
    with pytest.raises(FileNotFoundError, match="shard results missing"):
        read_frames(str(tmp_path / "shard-missing"))


def test_store_is_idempotent_and_failed_runs_are_retried(trained, tmp_path):
    _, requests, outcomes, broken = trained
    warehouse = tmp_path / "w.duckdb"
    frames = outcome_frames([*outcomes, broken], "grid-1").as_dict()
    store_run_results(warehouse, "grid-1", frames)
    store_run_results(warehouse, "grid-2", frames)  # e.g. a retried shard
    counts = query(warehouse, "SELECT (SELECT count(*) FROM runs) r, (SELECT count(*) FROM epoch_metrics) e,"
                              " (SELECT count(*) FROM predictions) p, (SELECT count(*) FROM features) f")
    n_pred = sum(o.result.n_test for o in outcomes)
    assert counts.row(0) == (3, 4, n_pred, 1)
    done = completed_run_ids(warehouse, [r.run_id for r in requests] + ["broken"])
    assert done == {r.run_id for r in requests}


def test_devices_round_robin_over_gpus_with_slots():
    plan = plan_devices(5, gpu_count=2, slots_per_gpu=3)
    assert plan.devices == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0"]
    assert plan.workers == 6 and list(plan.limits.values()) == [3, 3]
    assert plan.limit_names()[0] != plan.limit_names()[1]
    assert plan.cpu_threads == 0  # GPU plans leave torch's threads alone
    cpu = plan_devices(3, gpu_count=0, cpu_workers=1)
    assert cpu.devices == ["cpu"] * 3 and cpu.limit_names() == [None] * 3 and cpu.workers == 1
    with pytest.raises(ValueError):
        plan_devices(1, gpu_count=1, slots_per_gpu=0)


@pytest.mark.parametrize(("cores", "n_requests", "workers", "threads"), [
    (2, 36, 2, 1),  # one one-thread worker per core
    (2, 1, 1, 2),  # a lone request gets every core
    (8, 3, 3, 2),  # fewer requests than cores: the cores are shared out
    (1, 5, 1, 1),
])
def test_cpu_plans_one_worker_per_core_and_share_the_cores(monkeypatch, cores, n_requests, workers,
                                                           threads):
    monkeypatch.setattr("seqlab.grid.plan.os.cpu_count", lambda: cores)
    plan = plan_devices(n_requests, gpu_count=0)
    assert (plan.workers, plan.cpu_threads) == (workers, threads)
    assert plan.workers * plan.cpu_threads <= cores
