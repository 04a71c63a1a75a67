"""train-grid and train-shard: a grid spec fanned out as one mapped task per pack of configs."""

from __future__ import annotations

import time
from typing import Literal

from prefect import flow
from prefect.states import Failed

from seqlab.config import Settings
from seqlab.grid.plan import check_pack_mode
from seqlab.grid.requests import RunRequest
from seqlab.grid.run import failing_grid, grid_requests
from seqlab.grid.spec import GridParams, check_spec_fits_data, resolve_spec
from seqlab.tasks import grid as tasks
from seqlab.tasks.report import with_report
from seqlab.tasks.train import store_shard_results, train_on_host


@flow(name="train-grid", log_prints=True)
def train_grid(
    grid: GridParams = GridParams(), data: str | None = None,
    dispatch: Literal["local", "pool"] = "local", force: bool = False, symbol: str = "ETH",
    warehouse: str | None = None, output_dir: str | None = None, slots_per_gpu: int = 2,
    shards: int = 2, results: str | None = None, shard_deployment: str = "train-shard/train-shard",
    shard_timeout_s: float = 24 * 3600, pack_size: int = 0,
    pack_mode: Literal["streams", "batched", "fused"] = "streams",
) -> dict:
    """Train every config of ``grid`` on the symbol's validated prices; store every result.

    Configs already trained on the same data by the same code are reused unless ``force``.
    On GPUs configs train in packs of ``pack_size`` (0: sized from memory and measured
    throughput; 1: no packing), ``pack_mode`` streams, batched or fused; each member is its own run.
    """
    check_pack_mode(pack_mode)
    spec, settings = resolve_spec(grid), Settings.from_env(warehouse, output_dir)
    if data:
        from seqlab.flows.ingest import ingest_prices

        ingest_prices(data, symbol=symbol, warehouse=str(settings.warehouse),
                      output_dir=str(settings.output_dir))
    try:  # inline, not a task: a refusal is an answer, not a traceback per enclosing run
        data_version, rows = tasks.require_gate.fn(settings.warehouse, symbol)
    except tasks.GateClosed as refusal:
        return Failed(message=str(refusal), data=refusal)  # calling the flow still raises it
    check_spec_fits_data(spec, rows)
    prices = tasks.snapshot_prices(settings.warehouse, symbol, data_version, settings.output_dir / "snapshots")
    requests = grid_requests(spec, symbol=symbol, data_version=data_version, prices_path=prices,
                             output_dir=settings.output_dir)
    grid_id = tasks.open_grid(settings.warehouse, spec, grid.preset, symbol, data_version, requests, dispatch)
    todo, reused = tasks.reuse_finished_runs(settings.warehouse, grid_id, requests, force=force)
    started, failed = time.perf_counter(), 0
    with failing_grid(settings.warehouse, grid_id):  # a store that fails marks the grid failed
        if todo and dispatch == "pool":
            shard_states = tasks.dispatch_shards(
                todo, grid_id, shards, results or str(settings.output_dir / "shard-results"),
                shard_deployment, slots_per_gpu, timeout_s=shard_timeout_s, pack_size=pack_size,
                pack_mode=pack_mode)
            failed = sum(store_shard_results(settings.warehouse, grid_id, s) for s in shard_states)
        elif todo:
            failed = train_on_host(todo, grid_id, slots_per_gpu=slots_per_gpu, pack_size=pack_size,
                                   pack_mode=pack_mode, output_dir=settings.output_dir,
                                   warehouse=str(settings.warehouse))
    return with_report(tasks.close_grid(settings.warehouse, grid_id, trained=len(todo) - failed,
                       reused=len(reused), failed=failed, seconds=time.perf_counter() - started), settings)


@flow(name="train-shard", log_prints=True)
def train_shard(requests: list[dict], grid_id: str, results: str, slots_per_gpu: int = 2,
                pack_size: int = 0, pack_mode: str = "streams") -> int:
    """Train one shard of a grid on this worker; results go to Parquet, never to the warehouse."""
    check_pack_mode(pack_mode)
    return train_on_host([RunRequest.from_dict(r) for r in requests], grid_id,
                         slots_per_gpu=slots_per_gpu, pack_size=pack_size, pack_mode=pack_mode,
                         output_dir=Settings.from_env().output_dir, results=results)
