"""More faults: reads while a grid writes, a shard that never returns, a run out of memory."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from prefect import flow

from seqlab.engine.config import TrainConfig
from seqlab.grid.execute import train_request
from seqlab.grid.requests import RunOutcome, RunRequest, plan_requests
from seqlab.grid.results import outcome_frames
from seqlab.warehouse import WarehouseLocked, current_data_version, query
from seqlab.warehouse.runs import start_grid, store_run_results
from tests.conftest import REPO_ROOT, ingest_coincodex, recorded_reports, run_user_query

TINY_CONFIG = dict(hidden=4, epochs=2, lookback=10)
READ_TIMEOUT_S = 3.0
SLACK_S = 5.0  # process start-up, imports and scheduling on a busy 2-core machine

# Every run with all of its epochs, predictions and grid link, and no rows without a run:
# what a reader must see if every store is one whole transaction.
WHOLE_RUNS_SQL = """
SELECT r.run_id, r.epochs_run, r.n_test,
    (SELECT count(*) FROM epoch_metrics e WHERE e.run_id = r.run_id) AS epochs,
    (SELECT count(*) FROM predictions p WHERE p.run_id = r.run_id) AS days,
    (SELECT count(*) FROM grid_runs g WHERE g.run_id = r.run_id) AS links,
    (SELECT count(*) FROM epoch_metrics WHERE run_id NOT IN (SELECT run_id FROM runs))
        AS orphan_epochs,
    (SELECT count(*) FROM predictions WHERE run_id NOT IN (SELECT run_id FROM runs))
        AS orphan_days
FROM runs r ORDER BY r.run_id
"""

# Stores batches of runs until told to stop, the way a grid's parent stores finished runs.
# Batch i adds run i and replaces run i-1 with a different number of epochs and test days,
# so a reader that saw half a batch would find counts that do not match the run's row.
_WRITER = """
import pickle, sys, time
from dataclasses import replace
from pathlib import Path
from seqlab.grid.requests import RunOutcome
from seqlab.grid.results import outcome_frames
from seqlab.warehouse.runs import store_run_results

warehouse, grid_id, stop = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[4])
base = pickle.loads(Path(sys.argv[3]).read_bytes())

def version(number, epochs, days):
    b = base.result
    r = replace(b, train_loss=b.train_loss[:epochs], test_loss=b.test_loss[:epochs],
                val_loss=b.val_loss[:epochs], epoch_seconds=b.epoch_seconds[:epochs],
                epochs_run=epochs, n_test=days,
                predictions={k: v[:days] for k, v in b.predictions.items()})
    request = replace(base.request, run_id=f"run-{number:04d}",
                      config=replace(base.request.config, seed=number))
    return RunOutcome(request, r, None, "writer")

i = 0
while not stop.exists() and i < 2000:
    shape = (1 + i % 2, base.result.n_test - 100 * (i % 2))
    batch = [version(i, *shape)] + ([version(i - 1, *shape)] if i else [])
    store_run_results(warehouse, grid_id, outcome_frames(batch, grid_id).as_dict(), timeout_s=10)
    print(i, flush=True)
    i += 1
    time.sleep(0.1)  # a run finishing every ~0.1 s: far busier than a real grid
"""

# Holds the warehouse with an uncommitted write until told to stop (then rolls it back).
_HOLDER = """
import sys, time
from pathlib import Path
from seqlab.warehouse import connect

with connect(Path(sys.argv[1])) as con:
    con.execute("BEGIN TRANSACTION")
    con.execute("DELETE FROM predictions")
    print("holding", flush=True)
    while not Path(sys.argv[2]).exists():
        time.sleep(0.05)
"""


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    """A warehouse with the validated CoinCodex prices; each test works on its own copy."""
    return ingest_coincodex(tmp_path_factory.mktemp("faults-more"), "ingested.duckdb")


@pytest.fixture(scope="module")
def trained_outcome(tmp_path_factory, coincodex_prices) -> RunOutcome:
    """One real tiny run (2 epochs) whose result the writers below store many times over."""
    folder = tmp_path_factory.mktemp("outcome")
    prices = folder / "prices.parquet"
    coincodex_prices.write_parquet(prices)
    request = RunRequest(run_id="base", config=TrainConfig(cell="gru", **TINY_CONFIG),
                         symbol="ETH", data_version="dv", code_version="c",
                         prices_path=str(prices), checkpoint_dir=str(folder / "ckpt"))
    outcome = train_request(request)
    assert outcome.error is None and outcome.result.epochs_run == 2
    return outcome


def _copy(warehouse: Path, folder: Path) -> Path:
    target = folder / "w.duckdb"
    shutil.copy(warehouse, target)
    return target


def _assert_whole(frame: pl.DataFrame) -> int:
    """Every run is whole, and every run of the writer up to the newest is there; the count."""
    if frame.is_empty():
        return 0
    assert (frame["epochs"] == frame["epochs_run"]).all(), frame
    assert (frame["days"] == frame["n_test"]).all(), frame
    assert (frame["links"] == 1).all()
    assert frame["orphan_epochs"][0] == 0 and frame["orphan_days"][0] == 0
    assert frame["run_id"].to_list() == [f"run-{i:04d}" for i in range(frame.height)]
    return frame.height


def _assert_clear_lock_message(message: str, warehouse: Path, holder_pid: int) -> None:
    assert str(warehouse) in message and f"(PID {holder_pid})" in message, message
    assert "is locked by" in message and "gave up after" in message, message


def _start(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(child: subprocess.Popen, stop_file: Path) -> tuple[str, str]:
    stop_file.touch()
    try:
        return child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()


def _open_grid(warehouse: Path, grid_id: str) -> None:
    from seqlab.grid import GridParams, resolve_spec

    spec = resolve_spec(GridParams(preset="tiny"))
    start_grid(warehouse, grid_id=grid_id, symbol="ETH", preset="tiny", spec=spec.to_dict(),
               spec_key=spec.key(), data_version=current_data_version(warehouse, "ETH"),
               code_version="c", dispatch="local", n_configs=0)


def _seqlab_query(warehouse: Path, sql: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("seqlab")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "seqlab.cli"]
    arguments = ["query", sql, "--warehouse", str(warehouse), "--format", "json"]
    return subprocess.run([*command, *arguments], capture_output=True, text=True, timeout=60,
                          cwd=REPO_ROOT)


def _read_in_process(warehouse: Path, writer_pid: int) -> int | None:
    """One sandboxed query: the number of whole runs it saw, or None when the lock won."""
    started = time.monotonic()
    try:
        seen = _assert_whole(run_user_query(warehouse, WHOLE_RUNS_SQL, timeout_s=READ_TIMEOUT_S))
    except WarehouseLocked as exc:
        _assert_clear_lock_message(str(exc), warehouse, writer_pid)
        seen = None
    assert time.monotonic() - started < READ_TIMEOUT_S + SLACK_S
    return seen


def _read_with_cli(warehouse: Path, writer_pid: int) -> int | None:
    done = _seqlab_query(warehouse, WHOLE_RUNS_SQL)
    if done.returncode == 0:
        return _assert_whole(pl.DataFrame(json.loads(done.stdout)) if done.stdout.strip() != "[]"
                             else pl.DataFrame())
    assert done.returncode == 2, done.stderr
    _assert_clear_lock_message(done.stderr, warehouse, writer_pid)
    return None


def _report_inputs_are_whole(warehouse: Path, grid_id: str) -> int:
    from seqlab.warehouse.reports import load_report_inputs

    frames = load_report_inputs(warehouse, grid_id).frames
    runs = frames["runs"].select("run_id", "epochs_run", "n_test")
    epochs = frames["epochs"].group_by("run_id").len("epochs")
    days = frames["predictions"].group_by("run_id").len("days")
    joined = runs.join(epochs, on="run_id", how="left").join(days, on="run_id", how="left")
    assert (joined["epochs"] == joined["epochs_run"]).all(), joined
    assert (joined["days"] == joined["n_test"]).all(), joined
    assert epochs.height == days.height == runs.height
    return runs.height


def test_reads_and_report_builds_during_grid_writes_see_whole_transactions(
    tmp_path, ingested, trained_outcome
):
    """DuckDB lets one process hold a file: readers wait for the writer's store to end (bounded)."""
    from seqlab.runners.report import build_report

    warehouse, grid_id = _copy(ingested, tmp_path), "g-concurrent"
    _open_grid(warehouse, grid_id)
    base = tmp_path / "outcome.pickle"
    base.write_bytes(pickle.dumps(trained_outcome))
    stop = tmp_path / "stop"
    writer = _start(_WRITER, warehouse, grid_id, base, stop)
    seen: list[int | None] = []
    try:
        deadline = time.monotonic() + 60
        while not _read_in_process(warehouse, writer.pid):  # the writer's first store
            assert writer.poll() is None and time.monotonic() < deadline, writer.stderr.read()
            time.sleep(0.2)
        for _ in range(8):
            seen.append(_read_in_process(warehouse, writer.pid))
            time.sleep(0.05)  # a reader that polls, not one that never lets go
        seen.append(_read_with_cli(warehouse, writer.pid))
        seen.append(_report_inputs_are_whole(warehouse, grid_id))
        before_report = max(n for n in seen if n)
        build = build_report(warehouse, grid_id=grid_id, out_dir=tmp_path / "report")
        after_report = _read_in_process(warehouse, writer.pid)
        for _ in range(4):
            seen.append(_read_in_process(warehouse, writer.pid))
            time.sleep(0.05)
        assert writer.poll() is None, "the writer must still be writing when the reads end"
    finally:
        out, err = _stop(writer, stop)
    assert writer.returncode == 0, err  # readers never locked the writer out past its wait
    stores = len(out.split())
    succeeded = [n for n in seen if n is not None]
    assert len(succeeded) >= len(seen) // 2, seen  # readers get their turn between stores
    assert succeeded == sorted(succeeded), seen  # never a view older than one already seen
    assert len(set(succeeded)) >= 3 and stores >= max(succeeded), (seen, stores)
    # The build read one consistent state between the counts seen just before and after it.
    built = recorded_reports(warehouse, grid_id)
    assert built["report_id"].to_list() == [build.report_id]
    assert before_report <= built["n_runs"][0] <= (after_report or stores)
    assert build.html_path.is_file()
    assert _assert_whole(query(warehouse, WHOLE_RUNS_SQL)) == stores


def test_a_read_while_a_writer_holds_the_file_fails_clearly_in_bounded_time(
    tmp_path, trained_outcome
):
    warehouse = tmp_path / "w.duckdb"
    first = replace(trained_outcome, request=replace(trained_outcome.request, run_id="run-0000"))
    store_run_results(warehouse, "g", outcome_frames([first], "g").as_dict())
    stop = tmp_path / "stop"
    holder = _start(_HOLDER, warehouse, stop)
    try:
        assert holder.stdout.readline().strip() == "holding", holder.stderr.read()
        started = time.monotonic()
        with pytest.raises(WarehouseLocked) as excinfo:
            run_user_query(warehouse, "SELECT count(*) FROM predictions", timeout_s=1.0)
        waited = time.monotonic() - started
    finally:
        _, err = _stop(holder, stop)
    assert holder.returncode == 0, err
    assert 1.0 <= waited < 1.0 + SLACK_S
    assert excinfo.value.holder_pid == holder.pid and excinfo.value.waited_s >= 1.0
    _assert_clear_lock_message(str(excinfo.value), warehouse, holder.pid)
    # The holder's uncommitted delete was never visible and was rolled back when it closed.
    assert _assert_whole(run_user_query(warehouse, WHOLE_RUNS_SQL, timeout_s=READ_TIMEOUT_S)) == 1


HUNG_TIMEOUT_S = 3.0


@flow(name="dispatch-two-shards")
def _dispatch_two_shards(todo: list, grid_id: str, location: str, deployment: str) -> list[dict]:
    from seqlab.tasks.grid import dispatch_shards

    return dispatch_shards(todo, grid_id, 2, location, deployment, 1,
                           timeout_s=HUNG_TIMEOUT_S, poll_s=0.2)


def test_a_shard_that_never_returns_times_out_and_its_runs_are_retrained(
    tmp_path, prefect_harness, monkeypatch, trained_outcome
):
    """Shard 0 delivers its results and completes; shard 1's flow run stays RUNNING forever."""
    from prefect.client.orchestration import get_client
    from prefect.states import Cancelled, Completed, Running

    import seqlab.tasks.grid as grid_tasks
    from seqlab.flows.train import train_shard
    from seqlab.runners.grid import GridLedger, already_trained
    from seqlab.tasks.train import deliver_outcome, store_shard_results

    deployment = f"faults-{uuid.uuid4().hex[:8]}"
    train_shard.to_deployment(name=deployment).apply()  # no worker ever picks its runs up
    grid_id = f"g-hung-{uuid.uuid4().hex[:8]}"
    real_run_deployment = grid_tasks.run_deployment

    def run_with_fake_worker(name, parameters, **kwargs):
        """The real flow run, then what a worker would do: shard 0 finishes, shard 1 hangs."""
        flow_run = real_run_deployment(name, parameters=parameters, **kwargs)
        with get_client(sync_client=True) as client:
            if kwargs["flow_run_name"].endswith("-shard-0"):
                for request in parameters["requests"]:
                    delivered = replace(trained_outcome, request=RunRequest.from_dict(request), worker="w0")
                    deliver_outcome.fn(delivered, parameters["grid_id"], parameters["results"])
                client.set_flow_run_state(flow_run.id, Completed(), force=True)
            else:
                client.set_flow_run_state(flow_run.id, Running(), force=True)
        return flow_run

    monkeypatch.setattr(grid_tasks, "run_deployment", run_with_fake_worker)
    configs = [TrainConfig(cell=cell, seed=seed, **TINY_CONFIG) for cell in ("rnn", "gru")
               for seed in (0, 1)]
    requests = plan_requests(configs, symbol="ETH", data_version="dv", code="c",
                             prices_path=str(tmp_path / "prices.parquet"),
                             checkpoint_dir=str(tmp_path / "ckpt"))
    started = time.monotonic()
    shards = _dispatch_two_shards(requests, grid_id, str(tmp_path / "results"),
                                  f"train-shard/{deployment}")
    elapsed = time.monotonic() - started
    assert HUNG_TIMEOUT_S <= elapsed < HUNG_TIMEOUT_S + 30
    assert [s["state"] for s in shards] == ["COMPLETED", "TIMED_OUT"]
    with get_client(sync_client=True) as client:  # dispatch gave up and cancelled the hung run
        assert client.read_flow_run(shards[1]["flow_run_id"]).state.type.value == "CANCELLING"
        client.set_flow_run_state(shards[1]["flow_run_id"], Cancelled(), force=True)

    warehouse = tmp_path / "w.duckdb"
    ledger = GridLedger(warehouse, grid_id, [], [])
    failed = [store_shard_results.fn(ledger, shard) for shard in shards]
    assert failed == [0, 2]
    runs = query(warehouse, "SELECT run_id, status, error FROM runs")
    hung = {r["run_id"] for r in shards[1]["requests"]}
    delivered = {r["run_id"] for r in shards[0]["requests"]}
    for row in runs.iter_rows(named=True):
        if row["run_id"] in hung:
            assert row["status"] == "failed"
            missing = f"shard results missing: {shards[1]['location']}/{row['run_id']}/"
            assert missing in row["error"] and "TIMED_OUT" in row["error"]
        else:
            assert row["status"] == "ok" and row["error"] is None
    assert set(runs["run_id"]) == hung | delivered and len(hung) == len(delivered) == 2
    # Planning the grid again trains the timed-out runs and reuses the delivered ones.
    reused = already_trained(warehouse, requests, force=False)
    todo = [r for r in requests if r.run_id not in reused]
    assert {r.run_id for r in todo} == hung and reused == delivered


OOM_GRID = dict(cells=["rnn", "gru"], depths=[1], norms=["none", "layer"], feature_sets=["close"],
                seeds=[0], **TINY_CONFIG)


def test_a_run_out_of_memory_fails_alone_and_is_retrained_next_time(
    tmp_path, prefect_harness, monkeypatch, ingested
):
    import torch

    import seqlab.engine.train as engine_train
    import seqlab.runners.host as host_share
    from seqlab.flows.train import train_grid

    real_train_config = engine_train.train_config
    attempts: list[str] = []

    def out_of_memory_for_gru_layer(config, prices, **kwargs):
        if (config.cell, config.norm) == ("gru", "layer"):
            attempts.append(config.cell)
            raise torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.10 GiB total capacity)")
        return real_train_config(config, prices, **kwargs)

    warehouse = _copy(ingested, tmp_path)
    where = dict(symbol="ETH", warehouse=str(warehouse), output_dir=str(tmp_path / "out"))
    # The CPU plan on any host: one config per task, each through train_request -> train_config
    # (a GPU host would train packs or CUDA graphs, which do not call train_config).
    monkeypatch.setattr(host_share, "gpu_count", lambda: 0)
    monkeypatch.setattr(engine_train, "train_config", out_of_memory_for_gru_layer)
    first = train_grid(grid=OOM_GRID, **where)
    assert (first["trained"], first["failed"], first["status"]) == (3, 1, "completed_with_failures")
    assert attempts == ["gru"]  # a recorded failure is not retried within the grid
    runs = query(warehouse, f"""SELECT cell, norm, status, error, epochs_run,
        (SELECT count(*) FROM epoch_metrics e WHERE e.run_id = r.run_id) AS epochs
        FROM runs r WHERE grid_id = '{first['grid_id']}' ORDER BY cell, norm""")
    by_config = {(r["cell"], r["norm"]): r for r in runs.iter_rows(named=True)}
    assert len(by_config) == 4
    oom = by_config.pop(("gru", "layer"))
    assert oom["status"] == "failed" and oom["epochs"] == 0 and oom["epochs_run"] is None
    assert oom["error"].startswith("OutOfMemoryError: CUDA out of memory. Tried to allocate")
    for other in by_config.values():
        assert other["status"] == "ok" and other["error"] is None and other["epochs"] == 2

    monkeypatch.setattr(engine_train, "train_config", real_train_config)
    again = train_grid(grid=OOM_GRID, **where)
    assert (again["trained"], again["reused"], again["failed"]) == (1, 3, 0)
    statuses = query(warehouse, "SELECT status, count(*) n FROM runs GROUP BY status")
    assert statuses.rows() == [("ok", 4)]


def test_cli_query_waits_only_as_long_as_the_lock_timeout_setting(tmp_path, trained_outcome):
    """SEQLAB_LOCK_TIMEOUT_S bounds `seqlab query`'s wait for another writer (was a fixed 10 s)."""
    warehouse = tmp_path / "w.duckdb"
    store_run_results(warehouse, "g", outcome_frames([trained_outcome], "g").as_dict())
    stop = tmp_path / "stop"
    holder = _start(_HOLDER, warehouse, stop)
    try:
        assert holder.stdout.readline().strip() == "holding", holder.stderr.read()
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "seqlab.cli", "query", "SELECT count(*) FROM runs",
             "--warehouse", str(warehouse)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
            env={**os.environ, "SEQLAB_LOCK_TIMEOUT_S": "1"},
        )
        waited = time.monotonic() - started
    finally:
        _stop(holder, stop)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "gave up after 1." in result.stderr and str(holder.pid) in result.stderr
    assert waited < 1.0 + SLACK_S + 5  # interpreter start-up on a loaded machine included
