"""Faults in a grid: a killed process, a missing shard result, a crashing run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqlab.grid.execute import train_request
from seqlab.grid.requests import RunRequest
from seqlab.grid.results import outcome_frames, write_frames
from seqlab.runners.ingest import IngestOptions, ingest_source
from seqlab.warehouse import WarehouseError, query
from tests.conftest import COINCODEX, REPO_ROOT

GRID = dict(cells=["rnn", "gru"], depths=[1, 2], norms=["none", "layer"], feature_sets=["close"],
            seeds=[0], epochs=3, hidden=4, lookback=10)

_RUN_GRID = """
import sys
from seqlab.flows.train import train_grid
train_grid(symbol="ETH", warehouse=sys.argv[1], output_dir=sys.argv[2], grid={grid})
"""


def _stored_runs(warehouse: Path) -> int:
    try:
        return int(query(warehouse, "SELECT count(*) n FROM runs", timeout_s=1)["n"][0])
    except WarehouseError:  # the writer holds the file this instant
        return -1


def test_grid_killed_mid_run_resumes_without_duplicates(tmp_path, prefect_harness):
    from seqlab.flows.train import train_grid

    warehouse, out = tmp_path / "w.duckdb", tmp_path / "out"
    ingest_source(str(COINCODEX), IngestOptions(symbol="ETH", warehouse=warehouse,
                                                docs_dir=tmp_path / "docs"))
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}
    env.pop("PREFECT_API_URL", None)  # the child runs its own ephemeral server
    child = subprocess.Popen(
        [sys.executable, "-c", _RUN_GRID.format(grid=GRID), str(warehouse), str(out)],
        cwd=REPO_ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while _stored_runs(warehouse) < 2 and time.monotonic() < deadline:
            assert child.poll() is None, "the grid ended before it could be killed"
            time.sleep(0.5)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    stored_before = query(warehouse, "SELECT run_id FROM runs")["run_id"].to_list()
    assert 2 <= len(stored_before) < 8, "kill must land in the middle of the grid"
    # Every stored run is whole: all its epochs and predictions are there.
    whole = query(warehouse, """
        SELECT r.run_id, count(DISTINCT e.epoch) AS epochs, count(DISTINCT p.date) AS days, r.n_test
        FROM runs r LEFT JOIN epoch_metrics e USING (run_id) LEFT JOIN predictions p USING (run_id)
        GROUP BY r.run_id, r.n_test""")
    assert (whole["epochs"] == 3).all() and (whole["days"] == whole["n_test"]).all()

    resumed = train_grid(symbol="ETH", warehouse=str(warehouse), output_dir=str(out), grid=GRID)
    assert resumed["reused"] == len(stored_before)
    assert resumed["trained"] == 8 - len(stored_before) and resumed["failed"] == 0
    counts = query(warehouse, """SELECT (SELECT count(*) FROM runs) runs,
        (SELECT count(DISTINCT run_id) FROM runs) ids,
        (SELECT count(*) FROM epoch_metrics) epochs,
        (SELECT count(*) FROM (SELECT DISTINCT run_id, epoch FROM epoch_metrics)) epoch_keys""")
    assert counts.row(0) == (8, 8, 24, 24)


def test_missing_shard_results_are_recorded_as_failed_runs(tmp_path, coincodex_prices):
    from seqlab.runners.grid import GridLedger
    from seqlab.tasks.train import store_shard_results

    prices = tmp_path / "prices.parquet"
    coincodex_prices.write_parquet(prices)
    base = dict(symbol="ETH", data_version="dv", code_version="c", prices_path=str(prices),
                checkpoint_dir=str(tmp_path / "ckpt"))
    config = dict(cell="gru", hidden=4, epochs=1, lookback=10)
    from seqlab.engine.config import TrainConfig

    present = RunRequest(run_id="present", config=TrainConfig(**config), **base)
    lost = RunRequest(run_id="lost", config=TrainConfig(**config, seed=1), **base)
    location = tmp_path / "shard-0"
    write_frames(outcome_frames([train_request(present)], "g"), str(location / "present"))
    shard = {"location": str(location), "state": "CRASHED",
             "requests": [present.to_dict(), lost.to_dict()]}
    failed = store_shard_results.fn(GridLedger(tmp_path / "w.duckdb", "g", [], []), shard)
    assert failed == 1
    runs = query(tmp_path / "w.duckdb", "SELECT run_id, status, error FROM runs ORDER BY run_id")
    assert runs["status"].to_list() == ["failed", "ok"]
    assert "shard results missing" in runs["error"][0] and "CRASHED" in runs["error"][0]


def test_a_crashing_run_is_an_outcome_not_an_exception(tmp_path, coincodex_prices):
    prices = tmp_path / "prices.parquet"
    coincodex_prices.head(20).write_parquet(prices)  # far too short for lookback 30
    from seqlab.engine.config import TrainConfig

    request = RunRequest(run_id="short", config=TrainConfig(epochs=1), symbol="ETH",
                         data_version="dv", code_version="c", prices_path=str(prices),
                         checkpoint_dir=str(tmp_path))
    outcome = train_request(request)
    assert outcome.result is None and outcome.error
    assert outcome_frames([outcome], "g").runs["status"][0] == "failed"


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_bad_checkpoint_gives_a_clear_error(tmp_path, damage, coincodex_prices):
    from seqlab.engine import load_checkpoint

    path = tmp_path / "model.pt"
    if damage == "corrupt":
        path.write_bytes(b"not a checkpoint")
    with pytest.raises((FileNotFoundError, ValueError)) as excinfo:
        load_checkpoint(path)
    assert str(path) in str(excinfo.value)
