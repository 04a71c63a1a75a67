"""train-grid and train-shard: a grid spec fanned out as one mapped task per pack of configs."""

from __future__ import annotations

from typing import Literal

from prefect import flow
from prefect.states import Failed

from seqlab.config import Settings
from seqlab.flows.host import train_host_share
from seqlab.flows.ingest import ingest_prices
from seqlab.grid.dispatch import check_pack_mode
from seqlab.grid.requests import RunOutcome, RunRequest
from seqlab.grid.spec import GridParams, resolve_spec
from seqlab.runners.grid import prepare_grid
from seqlab.tasks import grid as tasks
from seqlab.tasks.report import with_report
from seqlab.tasks.train import deliver_outcome, store_results, store_shard_results


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
        ingest_prices(data, symbol=symbol, warehouse=str(settings.warehouse),
                      output_dir=str(settings.output_dir))
    try:  # inline, not a task: a refusal is an answer, not a traceback per enclosing run
        prepared = prepare_grid(spec, settings, symbol, snapshot=tasks.snapshot_prices)
    except tasks.GateClosed as refusal:
        return Failed(message=str(refusal), data=refusal)  # calling the flow still raises it
    ledger = tasks.open_grid(settings.warehouse, spec, prepared, preset=grid.preset,
                             dispatch=dispatch, force=force)
    failed = 0
    with ledger.failing():  # a store that fails marks the grid failed
        if ledger.todo and dispatch == "pool":
            shard_states = tasks.dispatch_shards(
                ledger.todo, ledger.grid_id, shards,
                results or str(settings.output_dir / "shard-results"), shard_deployment,
                slots_per_gpu, timeout_s=shard_timeout_s, pack_size=pack_size, pack_mode=pack_mode)
            failed = sum(store_shard_results(ledger, s) for s in shard_states)
        elif ledger.todo:
            failed = train_host_share(ledger.todo, ledger.grid_id,
                                      lambda outcomes: store_results(ledger, outcomes),
                                      slots_per_gpu=slots_per_gpu, pack_size=pack_size,
                                      pack_mode=pack_mode, output_dir=settings.output_dir)
    return with_report(tasks.close_grid(ledger, failed=failed), settings)


@flow(name="train-shard", log_prints=True)
def train_shard(requests: list[dict], grid_id: str, results: str, slots_per_gpu: int = 2,
                pack_size: int = 0, pack_mode: str = "streams", output_dir: str | None = None,
                ) -> int:
    """Train one shard of a grid on this worker; results go to Parquet, never to the warehouse."""
    check_pack_mode(pack_mode)
    settings = Settings.from_env(output_dir=output_dir)

    def deliver(outcomes: list[RunOutcome]) -> None:
        for outcome in outcomes:
            deliver_outcome(outcome, grid_id, results)

    return train_host_share([RunRequest.from_dict(r) for r in requests], grid_id, deliver,
                            slots_per_gpu=slots_per_gpu, pack_size=pack_size,
                            pack_mode=pack_mode, output_dir=settings.output_dir)
