"""Prefect tasks around a grid: the data gate, bookkeeping, GPU limits, shard dispatch."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.states import Cancelling

from seqlab.config import Settings
from seqlab.devices import DevicePlan, plan_devices
from seqlab.grid import GridSpec, split_shards
from seqlab.packs import calibration_path, load_calibration, plan_request_packs, resolve_pack_size
from seqlab.runs import RunOutcome, RunRequest, outcome_frames, write_frames
from seqlab.sample import write_sample_csv
from seqlab.warehouse import current_data_version
from seqlab.warehouse.gate import GateClosed as GateClosed  # raised by require_gate
from seqlab.warehouse.gate import require_validated
from seqlab.warehouse.runs import completed_run_ids, finish_grid, link_runs, start_grid


@task(name="require-gate", cache_policy=NO_CACHE)
def require_gate(warehouse: Path, symbol: str) -> dict:
    """The validated data_version and row count, or GateClosed saying why training may not run
    (the same gate as every trainer: seqlab.warehouse.gate.require_validated)."""
    validated = require_validated(warehouse, symbol)
    return {"data_version": validated.data_version, "rows": validated.prices.height}


@task(name="open-grid", cache_policy=NO_CACHE)
def open_grid(
    warehouse: Path, spec: GridSpec, preset: str, symbol: str, data_version: str,
    requests: list[RunRequest], dispatch: str,
) -> str:
    code = requests[0].code_version if requests else ""
    grid_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{spec.key()[:8]}"
    abandoned = start_grid(
        warehouse, grid_id=grid_id, symbol=symbol, preset=preset, spec=spec.to_dict(),
        spec_key=spec.key(), data_version=data_version, code_version=code, dispatch=dispatch,
        n_configs=len(requests),
    )
    for earlier in abandoned:
        get_run_logger().warning("grid %s was left running by a process that is gone: "
                                 "marked interrupted (its stored runs are reused)", earlier)
    return grid_id


@task(name="reuse-finished-runs", cache_policy=NO_CACHE)
def reused_runs(
    warehouse: Path, grid_id: str, requests: list[RunRequest], *, force: bool
) -> tuple[list[RunRequest], list[str]]:
    """Split requests into those to train and run_ids already trained on the same data and code."""
    done = set() if force else completed_run_ids(warehouse, [r.run_id for r in requests])
    reused = [r.run_id for r in requests if r.run_id in done]
    link_runs(warehouse, grid_id, reused, reused=True)
    return [r for r in requests if r.run_id not in done], reused


@task(name="close-grid", cache_policy=NO_CACHE)
def close_grid(
    warehouse: Path, grid_id: str, *, trained: int, reused: int, failed: int, seconds: float
) -> dict:
    status = "completed" if failed == 0 else "completed_with_failures"
    message = f"{trained} trained, {reused} reused, {failed} failed in {seconds:.1f}s"
    finish_grid(warehouse, grid_id, status=status, n_trained=trained, n_reused=reused,
                n_failed=failed, message=message)
    get_run_logger().info("grid %s %s: %s", grid_id, status, message)
    return {"grid_id": grid_id, "status": status, "trained": trained, "reused": reused,
            "failed": failed, "seconds": round(seconds, 2), "warehouse": str(warehouse)}


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@task(name="plan-devices", cache_policy=NO_CACHE)
def ensure_gpu_limits(n_requests: int, gpus: int, slots_per_gpu: int) -> DevicePlan:
    """Plan devices and make sure each GPU's global concurrency limit exists with its slots."""
    plan = plan_devices(n_requests, gpu_count=gpus, slots_per_gpu=slots_per_gpu)
    if plan.limits:
        with get_client(sync_client=True) as client:
            for name, slots in plan.limits.items():
                client.upsert_global_concurrency_limit_by_name(name, slots)
    return plan


@task(name="plan-packs", cache_policy=NO_CACHE)
def plan_packs_here(todo: list[RunRequest], pack_size: int, pack_mode: str, gpus: int,
                    slots_per_gpu: int) -> list[list[RunRequest]]:
    """Group this host's requests into packs sized for its GPUs (pack_size 0 = automatic)."""
    free_bytes, measured = None, None
    if gpus:
        import torch

        free_bytes = min(torch.cuda.mem_get_info(i)[0] for i in range(gpus))
        name = torch.cuda.get_device_name(0)
        measured = load_calibration(calibration_path(Settings.from_env().output_dir, name), pack_mode)
    size = resolve_pack_size(pack_size, gpus=gpus, configs=[r.train_config() for r in todo],
                             free_bytes=free_bytes, slots_per_gpu=slots_per_gpu,
                             measured_eps=measured, mode=pack_mode)
    packs = plan_request_packs(todo, size, pack_mode)
    get_run_logger().info("%d configs in %d packs (pack size %d, %s%s)", len(todo), len(packs), size,
                          pack_mode, ", from measured throughput" if measured else "")
    return packs


@task(name="deliver-outcome", retries=3, retry_delay_seconds=[2, 5, 15], cache_policy=NO_CACHE)
def write_outcome(outcome: RunOutcome, grid_id: str, location: str) -> str:
    """A shard's finished run as Parquet under ``location/<run_id>`` (written atomically)."""
    target = f"{location.rstrip('/')}/{outcome.request.run_id}"
    write_frames(outcome_frames([outcome], grid_id), target)
    return target


@task(name="dispatch-shards", cache_policy=NO_CACHE)
def dispatch_shards(
    todo: list[RunRequest], grid_id: str, shard_count: int, location: str, deployment: str,
    slots_per_gpu: int, timeout_s: float = 24 * 3600, poll_s: float = 2.0,
    pack_size: int = 0, pack_mode: str = "streams",
) -> list[dict]:
    """Start one train-shard flow run per shard, wait for all, report each shard's end state.

    A shard still unfinished after ``timeout_s`` is reported ``TIMED_OUT`` and its flow run
    is cancelled (a worker that never returns must not hold its GPU for ever).
    """
    logger = get_run_logger()
    shards = split_shards(todo, shard_count)
    started = []
    for i, shard in enumerate(shards):
        shard_location = f"{location.rstrip('/')}/{grid_id}/shard-{i}"
        run = run_deployment(
            deployment,
            parameters={"requests": [r.__dict__ for r in shard], "grid_id": grid_id,
                        "results": shard_location, "slots_per_gpu": slots_per_gpu,
                        "pack_size": pack_size, "pack_mode": pack_mode},
            timeout=0, flow_run_name=f"{grid_id}-shard-{i}",
            idempotency_key=f"{grid_id}-shard-{i}",
        )
        started.append({"flow_run_id": str(run.id), "location": shard_location,
                        "requests": [r.__dict__ for r in shard]})
        logger.info("shard %d/%d: %d configs -> flow run %s", i + 1, len(shards), len(shard), run.id)
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        pending = {s["flow_run_id"] for s in started}
        states: dict = {}
        while pending and time.monotonic() < deadline:
            for flow_run_id in list(pending):
                state = client.read_flow_run(flow_run_id).state
                if state is not None and state.is_final():
                    states[flow_run_id] = state
                    pending.discard(flow_run_id)
                    logger.info("shard flow run %s ended %s", flow_run_id, state.type.value)
            if pending:
                time.sleep(poll_s)
        for flow_run_id in pending:  # past the deadline: stop it holding a worker and a GPU
            client.set_flow_run_state(flow_run_id, Cancelling(), force=True)
            logger.warning("shard flow run %s did not finish within %.0f s: cancelling it; "
                           "its runs are recorded as failed and retrained next time",
                           flow_run_id, timeout_s)
    for shard in started:
        state = states.get(shard["flow_run_id"])
        shard["state"] = state.type.value if state is not None else "TIMED_OUT"
    return started


@task(name="current-data-version", cache_policy=NO_CACHE)
def current_version(warehouse: Path, symbol: str) -> str | None:
    if not Path(warehouse).exists():
        return None
    return current_data_version(warehouse, symbol)


@task(name="write-sample-data", cache_policy=NO_CACHE)
def write_sample_source(folder: Path) -> str:
    """The bundled SYNTHETIC series, written where the pipeline can ingest it."""
    return str(write_sample_csv(Path(folder)))
