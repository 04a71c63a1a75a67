"""Prefect tasks for training: one pack of configs per mapped task, results delivered by the parent."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task, unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from seqlab.grid import run as steps
from seqlab.grid.execute import train_placed_pack
from seqlab.grid.plan import DevicePlan, pack_label
from seqlab.grid.requests import RunOutcome, RunRequest
from seqlab.grid.results import outcome_frames, write_frames


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
def store_results(warehouse: Path, grid_id: str, outcomes: list[RunOutcome]) -> int:
    """The single writer: runs, epoch metrics, predictions and feature keys, one transaction."""
    return steps.store_outcomes(warehouse, grid_id, outcomes)


@task(name="deliver-outcome", retries=3, retry_delay_seconds=[2, 5, 15], cache_policy=NO_CACHE)
def deliver_outcome(outcome: RunOutcome, grid_id: str, location: str) -> str:
    """A shard's finished run as Parquet under ``location/<run_id>`` (written atomically)."""
    target = f"{location.rstrip('/')}/{outcome.request.run_id}"
    write_frames(outcome_frames([outcome], grid_id), target)
    return target


@task(name="store-shard-results", retries=3, retry_delay_seconds=[2, 5, 15], cache_policy=NO_CACHE)
def store_shard_results(warehouse: Path, grid_id: str, shard: dict) -> int:
    """Load one shard's Parquet results into the warehouse; returns the shard's failed runs."""
    return steps.store_shard(warehouse, grid_id, shard)


def train_and_deliver(packs: list[list[RunRequest]], plan: DevicePlan, grid_id: str,
                      pack_mode: str, *, warehouse: str | None = None,
                      results: str | None = None) -> int:
    """One mapped train-pack task per pack, as many at once as the device plan has workers;
    each pack's outcomes are delivered as it finishes.

    Delivered means stored in the warehouse (the grid's own process) or written as Parquet
    under ``results`` (a shard on a pool worker). A progress artifact and a log line per
    run follow the grid. Returns the number of failed runs.
    """
    artifact_id = create_progress_artifact(
        progress=0.0, key="grid-progress", description=f"grid {grid_id}: configs done")

    def deliver(outcomes: list[RunOutcome]) -> None:
        if warehouse is not None:
            store_results(Path(warehouse), grid_id, outcomes)
        else:
            for outcome in outcomes:
                deliver_outcome(outcome, grid_id, results)

    parameters = {"pack": plan.place(packs), "gpu_limit": plan.limit_names(),
                  "pack_mode": unmapped(pack_mode), "cpu_threads": unmapped(plan.cpu_threads)}
    # The runner used directly (not the flow's): the plan decides how many packs train at once.
    with ThreadPoolTaskRunner(max_workers=plan.workers) as runner:
        futures = runner.map(train_pack, parameters)
        return steps.follow_outcomes(
            (future.result() for future in as_completed(futures)), sum(len(p) for p in packs),
            deliver, get_run_logger().info,
            lambda fraction: update_progress_artifact(artifact_id, progress=100.0 * fraction))


def train_on_host(todo: list[RunRequest], grid_id: str, *, slots_per_gpu: int, pack_size: int,
                  pack_mode: str, output_dir: Path, warehouse: str | None = None,
                  results: str | None = None) -> int:
    """Packs planned for this host's devices, trained and delivered; returns the failed runs."""
    from seqlab.grid.plan import gpu_count
    from seqlab.tasks.grid import plan_devices_here, plan_packs_here

    gpus = gpu_count()
    packs = plan_packs_here(todo, pack_size, pack_mode, gpus, slots_per_gpu, output_dir)
    plan = plan_devices_here(len(packs), gpus, slots_per_gpu)
    return train_and_deliver(packs, plan, grid_id, pack_mode, warehouse=warehouse, results=results)
