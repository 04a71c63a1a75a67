"""train-grid and train-shard: a grid spec fanned out as one mapped task per pack of configs."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import as_completed
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from seqlab.config import Settings
from seqlab.grid import GridOverrides, build_grid, check_spec_fits_data, resolve_spec
from seqlab.packs import check_pack_mode
from seqlab.progress import GridProgress, notify
from seqlab.runs import RunOutcome, RunRequest, code_version, describe, plan_requests
from seqlab.tasks.grid import (
    GateClosed,
    close_grid,
    dispatch_shards,
    ensure_gpu_limits,
    gpu_count,
    open_grid,
    plan_packs_here,
    require_gate,
    reused_runs,
    write_outcome,
)
from seqlab.tasks.train import snapshot_prices, store_outcomes, store_shard_results, train_pack_task


@flow(name="train-grid", log_prints=True)
def train_grid(
    data: str | None = None,
    preset: str = "quick",
    cells: list[str] | None = None,
    depths: list[int] | None = None,
    norms: list[str] | None = None,
    feature_sets: list[str] | None = None,
    seeds: list[int] | None = None,
    epochs: int | None = None,
    lookback: int | None = None,
    hidden: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    val_fraction: float | None = None,
    dispatch: Literal["local", "pool"] = "local",
    force: bool = False,
    warehouse: str | None = None,
    symbol: str = "ETH",
    output_dir: str | None = None,
    slots_per_gpu: int = 2,
    shards: int = 2,
    results: str | None = None,
    shard_deployment: str = "train-shard/train-shard",
    shard_timeout_s: float = 24 * 3600,
    pack_size: int = 0,
    pack_mode: Literal["streams", "batched"] = "streams",
) -> dict:
    """Train every config of the grid on the symbol's validated prices; store every result.

    A config already trained on the same data by the same code is reused, not retrained,
    unless ``force``. Grid parameters are checked before anything runs.

    On GPUs configs train in packs (``pack_size`` members in lock-step per task; 0 picks
    the size from free memory and measured throughput, 1 turns packing off); ``pack_mode``
    ``streams`` replays each member's CUDA graph on its own stream, ``batched`` stacks
    same-architecture members' weights into one model. Every member is its own run.
    """
    check_pack_mode(pack_mode)
    spec = resolve_spec(preset, GridOverrides(
        cells=cells, depths=depths, norms=norms, feature_sets=feature_sets, seeds=seeds,
        epochs=epochs, lookback=lookback, hidden=hidden, batch_size=batch_size, lr=lr,
        val_fraction=val_fraction,
    ))
    settings = Settings.from_env(warehouse, output_dir)
    if data:
        from seqlab.flows.ingest import ingest_prices

        ingest_prices(data, symbol=symbol, warehouse=str(settings.warehouse),
                      output_dir=str(settings.output_dir))
    # Checked inline, not as a task: a refusal is an answer, and a failing task would have
    # Prefect log its traceback once per enclosing run (task, train-grid, pipeline). Returned
    # as a Failed state, calling this flow still raises the GateClosed.
    try:
        gate = require_gate.fn(settings.warehouse, symbol)
    except GateClosed as refusal:
        return Failed(message=str(refusal), data=refusal)
    check_spec_fits_data(spec, gate["rows"])
    prices_path = snapshot_prices(
        settings.warehouse, symbol, gate["data_version"], settings.output_dir / "snapshots"
    )
    requests = plan_requests(
        build_grid(spec), symbol=symbol, data_version=gate["data_version"], code=code_version(),
        prices_path=prices_path, checkpoint_dir=str(settings.output_dir / "checkpoints"),
    )
    grid_id = open_grid(settings.warehouse, spec, preset, symbol, gate["data_version"],
                        requests, dispatch)
    todo, reused = reused_runs(settings.warehouse, grid_id, requests, force=force)
    get_run_logger().info("grid %s: %d configs, %d reused, %d to train (%s dispatch)",
                          grid_id, len(requests), len(reused), len(todo), dispatch)
    started = time.perf_counter()
    if not todo:
        failed = 0
    elif dispatch == "pool":
        location = results or str(settings.output_dir / "shard-results")
        shard_states = dispatch_shards(todo, grid_id, shards, location, shard_deployment,
                                       slots_per_gpu, timeout_s=shard_timeout_s,
                                       pack_size=pack_size, pack_mode=pack_mode)
        failed = sum(
            store_shard_results(settings.warehouse, grid_id, shard) for shard in shard_states
        )
    else:
        failed = _train_here(todo, grid_id, slots_per_gpu, pack_size, pack_mode,
                             warehouse=str(settings.warehouse))
    return close_grid(settings.warehouse, grid_id, trained=len(todo) - failed,
                      reused=len(reused), failed=failed, seconds=time.perf_counter() - started)


@flow(name="train-shard", log_prints=True)
def train_shard(requests: list[dict], grid_id: str, results: str, slots_per_gpu: int = 2,
                pack_size: int = 0, pack_mode: str = "streams") -> int:
    """Train one shard of a grid on this worker; results go to Parquet, never to the warehouse."""
    check_pack_mode(pack_mode)
    return _train_here([RunRequest(**r) for r in requests], grid_id, slots_per_gpu, pack_size,
                       pack_mode, results=results)


def _train_here(
    todo: list[RunRequest], grid_id: str, slots_per_gpu: int, pack_size: int, pack_mode: str, *,
    warehouse: str | None = None, results: str | None = None,
) -> int:
    """Run packs on this host's devices, as many at once as the device plan has slots."""
    gpus = gpu_count()
    packs = plan_packs_here(todo, pack_size, pack_mode, gpus, slots_per_gpu)
    plan = ensure_gpu_limits(len(packs), gpus, slots_per_gpu)
    placed = [[replace(r, device=device) for r in pack]
              for pack, device in zip(packs, plan.devices, strict=True)]
    runner = ThreadPoolTaskRunner(max_workers=plan.workers)
    return train_requests.with_options(task_runner=runner)(
        placed, plan.limit_names(), grid_id, pack_mode, warehouse=warehouse, results=results,
        cpu_threads=plan.cpu_threads,
    )


@flow(name="train-requests", log_prints=True)
def train_requests(
    packs: list[list[RunRequest]], gpu_limits: list[str | None], grid_id: str,
    pack_mode: str = "streams", warehouse: str | None = None, results: str | None = None,
    cpu_threads: int = 0,
) -> int:
    """One mapped task per pack; each pack's outcomes are delivered the moment it finishes.

    Delivered means stored in the warehouse (the grid's own process) or written as Parquet
    under ``results`` (a shard on a pool worker). Returns the number of failed runs.
    """
    logger = get_run_logger()
    progress = GridProgress(total=sum(len(pack) for pack in packs))
    artifact_id = create_progress_artifact(
        progress=0.0, key="grid-progress", description=f"grid {grid_id}: configs done"
    )
    for future in as_completed(train_pack_task.map(packs, gpu_limits, unmapped(pack_mode),
                                                   unmapped(cpu_threads))):
        outcomes: list[RunOutcome] = future.result()
        if warehouse is not None:
            store_outcomes(Path(warehouse), grid_id, outcomes)
        else:
            for outcome in outcomes:
                write_outcome(outcome, grid_id, results)
        for outcome in outcomes:
            progress.advance(failed=outcome.error is not None)
            line = progress.line(describe(outcome))
            logger.info(line)
            notify(progress, line)
        update_progress_artifact(artifact_id, progress=100.0 * progress.fraction)
    return progress.failed
