"""Prefect task wrappers for training: one pack of configs per mapped task, results stored by the parent."""

from __future__ import annotations

import socket
from pathlib import Path

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency

from seqlab.engine.runtime import tune_malloc, use_cpu_threads
from seqlab.packs import pack_label, train_pack_requests
from seqlab.runs import (
    FRAME_NAMES,
    RunOutcome,
    RunRequest,
    outcome_frames,
    read_frames,
)
from seqlab.warehouse import load_prices
from seqlab.warehouse.gate import check_unchanged
from seqlab.warehouse.runs import store_run_results


@task(name="snapshot-prices", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 5])
def snapshot_prices(warehouse: Path, symbol: str, data_version: str, folder: Path) -> str:
    """The symbol's prices as a Parquet file named by data_version, so workers need no warehouse.

    The prices are the ones the gate passed at ``data_version``: an ingest in between makes
    this GateClosed, not a snapshot of unvalidated data under a validated name.
    """
    target = Path(folder) / f"prices-{symbol}-{data_version[:16]}.parquet"
    if not target.exists():
        prices = load_prices(warehouse, symbol)
        check_unchanged(prices, data_version, symbol)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".parquet.tmp")
        prices.write_parquet(tmp)
        tmp.replace(target)
    return str(target)


def _pack_run_name() -> str:
    from prefect.runtime import task_run

    return f"train-{pack_label(task_run.parameters['pack'])}"


# A run that raises inside the engine is already an outcome (status failed); the retry
# covers the task machinery itself (e.g. a lost concurrency lease).
@task(name="train-pack", task_run_name=_pack_run_name, retries=1, retry_delay_seconds=[5],
      cache_policy=NO_CACHE)
def train_pack_task(pack: list[RunRequest], gpu_limit: str | None = None,
                    pack_mode: str = "streams", cpu_threads: int = 0) -> list[RunOutcome]:
    """One pack of configs (often a pack of one) on this worker; one outcome per config."""
    tune_malloc()  # glibc's fault-heavy mode costs CPU epochs 10-25% (seqlab.engine.runtime)
    worker = socket.gethostname()
    if gpu_limit is None:
        use_cpu_threads(cpu_threads)  # the device plan's share of the cores per CPU worker
        return train_pack_requests(pack, worker, pack_mode)
    with concurrency(gpu_limit, occupy=1):
        return train_pack_requests(pack, worker, pack_mode)


@task(name="store-results", retries=3, retry_delay_seconds=[2, 5, 15], cache_policy=NO_CACHE)
def store_outcomes(warehouse: Path, grid_id: str, outcomes: list[RunOutcome]) -> int:
    """The single writer: runs, epoch metrics, predictions and feature keys, one transaction."""
    return store_run_results(warehouse, grid_id, outcome_frames(outcomes, grid_id).as_dict())


@task(name="store-shard-results", retries=3, retry_delay_seconds=[2, 5, 15], cache_policy=NO_CACHE)
def store_shard_results(warehouse: Path, grid_id: str, shard: dict) -> int:
    """Load one shard's Parquet results into the warehouse; returns the shard's failed runs.

    A run whose results file is missing (the worker died, the flow run crashed or timed
    out) is stored as a failed run naming the missing file, so the next run of the grid
    trains it again.
    """
    frames, missing = [], []
    for request in (RunRequest(**r) for r in shard["requests"]):
        location = f"{shard['location'].rstrip('/')}/{request.run_id}"
        try:
            frames.append(read_frames(location))
        except FileNotFoundError as exc:
            missing.append(RunOutcome(request, None, f"{exc} (shard flow run {shard['state']})"))
    if missing:
        frames.append(outcome_frames(missing, grid_id))
    merged = {name: pl.concat([getattr(f, name) for f in frames]) for name in FRAME_NAMES}
    store_run_results(warehouse, grid_id, merged)
    return int((merged["runs"]["status"] == "failed").sum())
