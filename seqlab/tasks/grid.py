"""Prefect tasks around a grid: each wraps one step of seqlab.runners.grid (the logic lives there)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.exceptions import MissingContextError, ObjectNotFound
from prefect.states import Cancelling

from seqlab.grid.dispatch import DeploymentMismatch, check_deployment_parameters, split_shards
from seqlab.grid.plan import DevicePlan, plan_host_packs
from seqlab.grid.requests import RunRequest
from seqlab.grid.spec import GridSpec
from seqlab.runners import grid as ledgers
from seqlab.runners.grid import GridLedger, PreparedGrid
from seqlab.runners.host import place_packs
from seqlab.sample import write_sample_csv
from seqlab.warehouse import current_data_version as read_data_version
from seqlab.warehouse.gate import GateClosed as GateClosed  # the gate's refusal, for the flows


def _logger():
    """The run's logger; a plain one when a test calls a task's ``.fn`` outside a run."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("seqlab.grid")


@task(name="snapshot-prices", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 5])
def snapshot_prices(warehouse: Path, symbol: str, data_version: str, folder: Path) -> str:
    return ledgers.snapshot_prices(warehouse, symbol, data_version, folder)


@task(name="open-grid", cache_policy=NO_CACHE)
def open_grid(warehouse: Path, spec: GridSpec, prepared: PreparedGrid, *, preset: str | None,
              dispatch: str, force: bool) -> GridLedger:
    """Record the grid as running and split off the runs it reuses (the grid's ledger)."""
    ledger = GridLedger.open(warehouse, spec, prepared, preset=preset, dispatch=dispatch,
                             force=force)
    for earlier in ledger.abandoned:
        _logger().warning("grid %s was left running by a process that is gone: "
                          "marked interrupted (its stored runs are reused)", earlier)
    _logger().info("grid %s: %d configs, %d reused, %d to train", ledger.grid_id,
                   len(prepared.requests), len(ledger.reused), len(ledger.todo))
    return ledger


@task(name="close-grid", cache_policy=NO_CACHE)
def close_grid(ledger: GridLedger, *, failed: int) -> dict:
    closed = ledger.close(failed=failed)
    _logger().info("grid %s %s: %s", closed.grid_id, closed.status, closed.summary())
    return closed.to_dict()


@task(name="plan-packs-here", cache_policy=NO_CACHE)
def plan_packs_here(todo: list[RunRequest], pack_size: int, pack_mode: str, gpus: int,
                    slots_per_gpu: int, output_dir: Path) -> list[list[RunRequest]]:
    """Group this host's requests into packs sized for its GPUs (pack_size 0 = automatic)."""
    packs, size, measured = plan_host_packs(todo, pack_size, pack_mode, gpus=gpus,
                                            slots_per_gpu=slots_per_gpu, output_dir=output_dir)
    _logger().info("%d configs in %d packs (pack size %d, %s%s)", len(todo), len(packs), size,
                          pack_mode, ", from measured throughput" if measured else "")
    return packs


@task(name="place-packs-here", cache_policy=NO_CACHE)
def place_packs_here(n_packs: int, gpus: int, slots_per_gpu: int) -> DevicePlan:
    """Place packs on devices; each GPU gets a global concurrency limit with its slots."""
    plan = place_packs(n_packs, gpus, slots_per_gpu)
    if plan.limits:
        with get_client(sync_client=True) as client:
            for name, slots in plan.limits.items():
                client.upsert_global_concurrency_limit_by_name(name, slots)
    return plan


def check_shard_deployment(deployment: str, parameters: Iterable[str]) -> None:
    """Refuse in one line a shard deployment that is not registered or does not take
    the ``parameters`` named."""
    with get_client(sync_client=True) as client:
        try:
            schema = client.read_deployment_by_name(deployment).parameter_openapi_schema
        except ObjectNotFound:
            raise DeploymentMismatch(
                f"deployment {deployment!r} is not registered on the Prefect server: deploy "
                "it from this checkout with `prefect deploy --all`") from None
    check_deployment_parameters(deployment, schema, parameters)


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
    logger = _logger()
    shards = split_shards(todo, shard_count)
    common = {"grid_id": grid_id, "slots_per_gpu": slots_per_gpu, "pack_size": pack_size,
              "pack_mode": pack_mode}
    # Before any shard starts: Prefect's server accepts parameters a deployed flow does not
    # take (a deployment from another seqlab), then every shard crashes on its worker with
    # "Process exited with status code: 1"; say here which deployment and what to do.
    check_shard_deployment(deployment, ["requests", "results", *common])
    started = []
    for i, shard in enumerate(shards):
        shard_location = f"{location.rstrip('/')}/{grid_id}/shard-{i}"
        requests = [r.to_dict() for r in shard]
        run = run_deployment(
            deployment,
            parameters={"requests": requests, "results": shard_location, **common},
            timeout=0, flow_run_name=f"{grid_id}-shard-{i}",
            idempotency_key=f"{grid_id}-shard-{i}",
        )
        started.append({"flow_run_id": str(run.id), "location": shard_location,
                        "requests": requests})
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
def current_data_version(warehouse: Path, symbol: str) -> str | None:
    if not Path(warehouse).exists():
        return None
    return read_data_version(warehouse, symbol)


@task(name="write-sample-data", cache_policy=NO_CACHE)
def write_sample_data(folder: Path) -> str:
    """The bundled SYNTHETIC series, written where the pipeline can ingest it."""
    return str(write_sample_csv(Path(folder)))
