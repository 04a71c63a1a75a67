"""End to end on a real Prefect server: deploy from prefect.yaml, workers, pool dispatch.

Starts `prefect server` on 127.0.0.1 (free port, temporary PREFECT_HOME), creates the cpu and
gpu pools, starts one worker per pool, runs `prefect deploy --all` from the repository's
prefect.yaml, triggers `train-grid` with a tiny grid in pool mode (shards run as flow runs of
the train-shard deployment), then the same grid in local mode on a copy of the warehouse, and
checks both give the same results. Every process it starts is stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest

from seqlab.runners.ingest import IngestOptions, ingest_source
from seqlab.warehouse import query
from tests.conftest import COINCODEX, REPO_ROOT

PREFECT = str(Path(sys.executable).parent / "prefect")
GRID = {"cells": ["rnn", "gru"], "depths": [1], "norms": ["none", "layer"],
        "feature_sets": ["close"], "seeds": [0], "epochs": 2, "hidden": 4, "lookback": 10}
# Columns that legitimately differ between two runs of the same config.
RUN_NOISE = {"grid_id", "worker", "seconds", "stored_at", "checkpoint_path", "device"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, timeout_s: float, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"prefect server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"prefect server at {url} not healthy after {timeout_s}s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_WORKER_PREFETCH_SECONDS": "1", "PREFECT_LOGGING_LEVEL": "INFO"}
    log = (home / "server.log").open("w")
    server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    processes = [server]
    try:
        _wait_healthy(api, 180, server)
        yield {"env": env, "home": home, "processes": processes}
    finally:
        for process in reversed(processes):
            _stop(process)
        log.close()


def _prefect(env: dict, *args: str, timeout: float = 300) -> str:
    done = subprocess.run([PREFECT, "--no-prompt", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_pool_dispatch_through_deployments_matches_local(prefect_server, tmp_path):
    env = prefect_server["env"]
    pool_wh, local_wh = tmp_path / "pool.duckdb", tmp_path / "local.duckdb"
    ingest_source(str(COINCODEX), IngestOptions(symbol="ETH", warehouse=pool_wh,
                                                docs_dir=tmp_path / "docs"))
    shutil.copy(pool_wh, local_wh)

    for pool in ("cpu", "gpu"):
        _prefect(env, "work-pool", "create", pool, "--type", "process")
    _prefect(env, "deploy", "--all")
    deployments = _prefect(env, "deployment", "ls")
    for name in ("ingest-prices", "train-grid", "train-shard", "retrain", "retrain-grid", "backtest",
                 "pipeline"):
        assert name in deployments
    for pool in ("cpu", "gpu"):
        log = (prefect_server["home"] / f"worker-{pool}.log").open("w")
        prefect_server["processes"].append(subprocess.Popen(
            [PREFECT, "worker", "start", "--pool", pool, "--limit", "4"], env=env, cwd=REPO_ROOT,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def run_grid(warehouse: Path, dispatch: str) -> None:
        params = {"grid": GRID, "symbol": "ETH", "dispatch": dispatch, "shards": 2,
                  "warehouse": str(warehouse), "output_dir": str(tmp_path / f"out-{dispatch}")}
        _prefect(env, "deployment", "run", "train-grid/train-grid", "--params", json.dumps(params),
                 "--watch", "--watch-interval", "2", "--watch-timeout", "600", timeout=700)

    run_grid(pool_wh, "pool")
    grid = query(pool_wh, "SELECT * FROM grids")
    assert grid.height == 1 and grid["status"][0] == "completed", grid.to_dicts()
    assert grid["dispatch"][0] == "pool" and grid["n_configs"][0] == 4
    pool_runs = query(pool_wh, "SELECT * FROM runs ORDER BY run_id")
    assert pool_runs.height == 4 and (pool_runs["status"] == "ok").all()
    shard_files = list((tmp_path / "out-pool" / "shard-results").rglob("runs.parquet"))
    assert len(shard_files) == 4  # one folder per run, under two shard folders
    assert len({p.parent.parent for p in shard_files}) == 2

    run_grid(local_wh, "local")
    local_runs = query(local_wh, "SELECT * FROM runs ORDER BY run_id")
    keep = [c for c in pool_runs.columns if c not in RUN_NOISE]
    differ = [c for c in keep if not pool_runs[c].equals(local_runs[c])]
    assert not differ, {c: (pool_runs[c].to_list(), local_runs[c].to_list()) for c in differ}
    for table, order in (("epoch_metrics", "run_id, epoch"), ("predictions", "run_id, date")):
        columns = "* EXCLUDE (seconds)" if table == "epoch_metrics" else "*"
        a = query(pool_wh, f"SELECT {columns} FROM {table} ORDER BY {order}")
        b = query(local_wh, f"SELECT {columns} FROM {table} ORDER BY {order}")
        assert a.height > 0 and a.equals(b), table
    assert pl.Series(pool_runs["run_id"]).equals(local_runs["run_id"])
