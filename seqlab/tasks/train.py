"""Prefect tasks for training: one pack of configs per mapped task, results delivered by the parent."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency

from seqlab.grid.execute import train_placed_pack
from seqlab.grid.plan import pack_label
from seqlab.grid.requests import RunOutcome, RunRequest
from seqlab.grid.results import outcome_frames, write_frames
from seqlab.runners.grid import GridLedger


def _pack_run_name() -> str:
    from prefect.runtime import task_run

    return f"train-{pack_label(task_run.parameters['pack'])}"


# A run that raises inside the engine is already an outcome (status failed); the retry
# covers the task machinery itself (e.g. a lost concurrency lease).
@task(name="train-pack", task_run_name=_pack_run_name, retries=1, retry_delay_seconds=[5],
      cache_policy=NO_CACHE)
def train_pack(pack: list[RunRequest], gpu_limit: str | None = None,
                    pack_mode: str = "streams", cpu_threads: int = 0) -> list[RunOutcome]:
    """One pack of configs (often a pack of one) on this worker; one outcome per config."""
    if gpu_limit is None:
        return train_placed_pack(pack, pack_mode, cpu_threads)
    with concurrency(gpu_limit, occupy=1):
        return train_placed_pack(pack, pack_mode)


@task(name="store-results", retries=3, retry_delay_seconds=[2, 5, 15], cache_policy=NO_CACHE)
def store_results(ledger: GridLedger, outcomes: list[RunOutcome]) -> int:
    """The single writer: runs, epoch metrics, predictions and feature keys, one transaction."""
    return ledger.deliver(outcomes)


@task(name="deliver-outcome", retries=3, retry_delay_seconds=[2, 5, 15], cache_policy=NO_CACHE)
def deliver_outcome(outcome: RunOutcome, grid_id: str, location: str) -> str:
    """A shard's finished run as Parquet under ``location/<run_id>`` (written atomically)."""
    target = f"{location.rstrip('/')}/{outcome.request.run_id}"
    write_frames(outcome_frames([outcome], grid_id), target)
    return target


@task(name="store-shard-results", retries=3, retry_delay_seconds=[2, 5, 15], cache_policy=NO_CACHE)
def store_shard_results(ledger: GridLedger, shard: dict) -> int:
    """Load one shard's Parquet results into the warehouse; returns the shard's failed runs."""
    return ledger.deliver_shard(shard)
