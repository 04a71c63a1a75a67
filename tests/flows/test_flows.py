"""Prefect flows on a temporary server: ingest, the gate, train-grid, reuse and retrain."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl
import pytest

from seqlab.grid import GridError
from seqlab.tasks.grid import GateClosed
from seqlab.warehouse import query
from tests.conftest import COINCODEX

TINY = dict(cells=["rnn", "gru"], depths=[1], norms=["none", "layer"], feature_sets=["close"],
            seeds=[0], epochs=2, hidden=4, lookback=10)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, prefect_harness):
    folder = tmp_path_factory.mktemp("flows")
    return {"warehouse": str(folder / "w.duckdb"), "output_dir": str(folder / "out")}


@pytest.fixture(scope="module")
def first_run(workspace):
    from seqlab.flows.pipeline import pipeline

    return pipeline(data=str(COINCODEX), symbol="ETH", grid=TINY, **workspace)


@pytest.fixture(scope="module")
def first_grid(first_run):
    return first_run["grid"]


def test_pipeline_ingests_gates_trains_and_reports(first_run):
    assert first_run["ingest"][0]["rows_valid"] == 3654 and first_run["ingest"][0]["gate_passed"]
    report = first_run["report"]
    assert report["grid_id"] == first_run["grid"]["grid_id"]
    for key in ("html_path", "markdown_path"):
        assert Path(report[key]).is_file()


def test_grid_trains_and_stores_every_config(first_grid, workspace):
    assert first_grid["status"] == "completed"
    assert (first_grid["trained"], first_grid["reused"], first_grid["failed"]) == (4, 0, 0)
    runs = query(workspace["warehouse"],
                 f"SELECT * FROM runs WHERE grid_id = '{first_grid['grid_id']}'")
    assert runs.height == 4
    assert set(zip(runs["cell"], runs["norm"], strict=True)) == {
        ("rnn", "none"), ("rnn", "layer"), ("gru", "none"), ("gru", "layer")}
    assert (runs["status"] == "ok").all()
    assert runs["test_rmse_usd"].is_not_null().all() and runs["baseline_rmse_usd"].is_not_null().all()
    epochs = query(workspace["warehouse"],
                   "SELECT run_id, count(*) n, min(epoch) lo, max(epoch) hi FROM epoch_metrics GROUP BY run_id")
    assert epochs.height == 4 and set(epochs["n"]) == {2} and set(epochs["hi"]) == {2}
    predictions = query(workspace["warehouse"], "SELECT run_id, count(*) n FROM predictions GROUP BY run_id")
    assert predictions.height == 4 and (predictions["n"] > 600).all()
    grid = query(workspace["warehouse"], f"SELECT * FROM grids WHERE grid_id = '{first_grid['grid_id']}'")
    assert grid["status"][0] == "completed" and grid["n_configs"][0] == 4
    # One CPU worker per core, the cores shared out as torch threads (seqlab.grid.plan).
    threads = query(workspace["warehouse"], "SELECT DISTINCT json_extract(determinism, "
                    f"'$.torch_threads')::INT AS t FROM runs WHERE grid_id = '{first_grid['grid_id']}'")
    cores = os.cpu_count() or 1
    assert threads["t"].to_list() == [max(1, cores // min(4, cores))]


def test_same_grid_on_same_data_trains_nothing(first_grid, workspace):
    from seqlab.flows.train import train_grid

    again = train_grid(symbol="ETH", grid=TINY, **workspace)
    assert (again["trained"], again["reused"]) == (0, 4)
    links = query(workspace["warehouse"],
                  f"SELECT count(*) n FROM grid_runs WHERE grid_id = '{again['grid_id']}' AND reused")
    assert links["n"][0] == 4
    forced = train_grid(symbol="ETH", grid={**TINY, "cells": ["rnn"], "norms": ["none"]},
                        force=True, **workspace)
    assert (forced["trained"], forced["reused"]) == (1, 0)
    assert query(workspace["warehouse"], "SELECT count(*) n FROM runs")["n"][0] == 4  # replaced, not duplicated


def test_retrain_trains_again_only_when_prices_change(first_grid, workspace, tmp_path, coincodex_prices):
    from seqlab.flows.pipeline import retrain

    source = tmp_path / "eth.csv"
    coincodex_prices.write_csv(source)
    unchanged = retrain(str(source), symbol="ETH", mode="grid", grid={"preset": "tiny"}, **workspace)
    assert unchanged["changed"] is False
    last = coincodex_prices.tail(1)
    next_day = last.with_columns(pl.col("date") + pl.duration(days=1), pl.col("close") * 1.01,
                                 pl.col("high") * 1.02)
    pl.concat([coincodex_prices, next_day]).write_csv(source)
    changed = retrain(str(source), symbol="ETH", mode="grid", grid={"preset": "tiny"}, **workspace)
    assert changed["changed"] is True
    assert changed["grid"]["trained"] == 3  # the tiny preset: rnn, lstm, gru on the new data
    versions = query(workspace["warehouse"], "SELECT DISTINCT data_version FROM runs")
    assert versions.height == 2



def test_retrain_refits_the_champions_and_keeps_their_forecasts(first_grid, workspace, tmp_path,
                                                                coincodex_prices):
    from seqlab.flows.forecast import backtest
    from seqlab.flows.pipeline import retrain

    last = coincodex_prices.tail(1)
    later = [last.with_columns(pl.col("date") + pl.duration(days=k), pl.col("close") * (1 + k / 100),
                               pl.col("high") * 1.05) for k in (1, 2)]
    source = tmp_path / "eth.csv"
    pl.concat([coincodex_prices, *later]).write_csv(source)
    done = retrain(str(source), symbol="ETH", mode="champions", top=2, **workspace)
    assert done["changed"] is True and done["artifact"]
    forecasts = query(workspace["warehouse"],
                      f"SELECT * FROM forecasts WHERE batch_id = '{done['batch_id']}'")
    assert forecasts.height == 2 and set(forecasts["champion_rank"]) == {1, 2}
    assert set(forecasts["target_date"]) == {later[1]["date"][0] + dt.timedelta(days=1)}
    walked = backtest(start=coincodex_prices["date"][-10], top=1, refit_every=30, epochs=1,
                      **workspace)
    assert walked["forecasts"] == 11 and walked["scored"] == 11 and walked["artifact"]


def test_bad_grid_parameters_are_refused_before_anything_runs(workspace):
    from seqlab.flows.train import train_grid

    before = query(workspace["warehouse"], "SELECT count(*) n FROM grids")["n"][0]
    with pytest.raises(GridError, match="allowed: 1, 2"):
        train_grid(symbol="ETH", grid={"depths": [0]}, **workspace)
    with pytest.raises(GridError, match="lookback 5000 is too long"):
        train_grid(symbol="ETH", grid={"preset": "tiny", "lookback": 5000}, **workspace)
    assert query(workspace["warehouse"], "SELECT count(*) n FROM grids")["n"][0] == before


def test_training_refused_when_the_gate_failed(workspace, tmp_path, coincodex_prices):
    from seqlab.flows.ingest import ingest_prices
    from seqlab.flows.train import train_grid

    broken = tmp_path / "short.csv"
    # Far too few rows for the dataset suite; stored as SHORT, so the file says SHORT too.
    coincodex_prices.head(20).with_columns(symbol=pl.lit("SHORT")).write_csv(broken)
    summaries = ingest_prices(str(broken), symbol="SHORT", **workspace)
    assert summaries[0]["gate_passed"] is False
    with pytest.raises(GateClosed, match="refusing to train on SHORT"):
        train_grid(symbol="SHORT", grid={"preset": "tiny"}, **workspace)


def test_packed_grid_stores_every_member_as_its_own_run(first_grid, workspace):
    """pack_size 2: two configs per task; on CPU each member equals its unpacked run."""
    import json

    from seqlab.flows.train import train_grid

    warehouse = workspace["warehouse"]

    def losses(grid_id: str):
        return query(warehouse, "SELECT m.run_id, m.epoch, m.train_loss, m.test_loss "
                                "FROM epoch_metrics m JOIN grid_runs g USING (run_id) "
                                f"WHERE g.grid_id = '{grid_id}' ORDER BY m.run_id, m.epoch")

    alone = train_grid(symbol="ETH", grid=TINY, force=True, pack_size=1, **workspace)
    before = losses(alone["grid_id"])
    packed = train_grid(symbol="ETH", grid=TINY, force=True, pack_size=2, **workspace)
    assert (packed["trained"], packed["failed"]) == (4, 0)
    after = losses(packed["grid_id"])
    assert before.height == 8 and after.equals(before)  # same runs, same losses
    assert query(warehouse, "SELECT count(*) n FROM epoch_metrics")["n"][0] == query(
        warehouse, "SELECT sum(epochs_run) n FROM runs")["n"][0]  # replaced, not duplicated
    runs = query(warehouse, f"SELECT r.determinism FROM runs r JOIN grid_runs g USING (run_id) "
                            f"WHERE g.grid_id = '{packed['grid_id']}'")
    assert runs.height == 4
    assert {json.loads(d)["pack"]["mode"] for d in runs["determinism"]} == {"sequential: no CUDA"}
    from prefect.exceptions import ParameterTypeError

    with pytest.raises(ParameterTypeError, match="'streams', 'batched' or 'fused'"):
        train_grid(symbol="ETH", grid=TINY, pack_mode="threads", **workspace)
