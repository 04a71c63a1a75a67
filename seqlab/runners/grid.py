"""A grid, start to finish, as plain functions: the counterpart of ``ingest_source``.

gate -> snapshot -> requests -> open grid -> reuse -> packs on devices -> train -> store ->
close. The Prefect tasks in ``seqlab/tasks/grid.py`` wrap these same steps one by one and
the ``train-grid`` flow wires them; :func:`run_grid` calls them in this process without
Prefect (scripts, tests), with the same devices, packs and threads, so both store the same
warehouse contents.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from seqlab.config import Settings
from seqlab.engine.config import TrainConfig
from seqlab.grid.execute import read_prices, train_placed_pack
from seqlab.grid.plan import gpu_count, plan_devices, plan_host_packs
from seqlab.grid.progress import GridProgress, notify
from seqlab.grid.requests import RunOutcome, RunRequest, code_version, describe, plan_requests
from seqlab.grid.results import RunFrames, outcome_frames, read_frames
from seqlab.grid.spec import GridSpec, build_grid, check_spec_fits_data
from seqlab.schemas.symbols import check_symbol
from seqlab.warehouse import WarehouseError, load_prices
from seqlab.warehouse.gate import check_unchanged, require_validated
from seqlab.warehouse.runs import (
    SINGLE_RUN_PRESET,
    completed_run_ids,
    find_finished_grid,
    finish_grid,
    link_runs,
    start_grid,
    store_run_results,
)


@dataclass(frozen=True)
class GridRun:
    """How a grid ended: what the CLI prints and the flow returns."""

    grid_id: str
    status: str
    trained: int
    reused: int
    failed: int
    seconds: float
    warehouse: str

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return f"{self.trained} trained, {self.reused} reused, {self.failed} failed"


# --- the steps ----------------------------------------------------------------------------

def gate_prices(warehouse: Path, symbol: str) -> tuple[str, int]:
    """The validated data_version and row count, or GateClosed saying why training may not run
    (the same gate as every trainer: seqlab.warehouse.gate.require_validated)."""
    validated = require_validated(warehouse, symbol)
    return validated.data_version, validated.prices.height


def snapshot_prices(warehouse: Path, symbol: str, data_version: str, folder: Path) -> str:
    """The symbol's prices as a Parquet file named by data_version, so workers need no warehouse.

    The prices are the ones the gate passed at ``data_version``: an ingest in between makes
    this GateClosed, not a snapshot of unvalidated data under a validated name.
    """
    # The symbol becomes part of a file name: the one symbol rule keeps it a plain name.
    target = Path(folder) / f"prices-{check_symbol(symbol)}-{data_version[:16]}.parquet"
    if not target.exists():
        prices = load_prices(warehouse, symbol)
        check_unchanged(prices, data_version, symbol)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".parquet.tmp")
        prices.write_parquet(tmp)
        tmp.replace(target)
    return str(target)


def gated_prices(spec: GridSpec, settings: Settings, symbol: str) -> tuple[str, int, str]:
    """(data_version, rows, snapshot path): the gate passed, the spec fits the prices, and
    the prices workers will read are written once."""
    data_version, rows = gate_prices(settings.warehouse, symbol)
    check_spec_fits_data(spec, rows)
    prices_path = snapshot_prices(settings.warehouse, symbol, data_version,
                                  settings.output_dir / "snapshots")
    return data_version, rows, prices_path


def grid_requests(spec: GridSpec, *, symbol: str, data_version: str, prices_path: str,
                  output_dir: Path) -> list[RunRequest]:
    """One request per config of the spec, keyed by this code's version."""
    return plan_requests(
        build_grid(spec), symbol=symbol, data_version=data_version, code=code_version(),
        prices_path=prices_path, checkpoint_dir=str(Path(output_dir) / "checkpoints"),
    )


def open_grid(warehouse: Path, spec: GridSpec, preset: str | None, symbol: str,
              data_version: str, requests: list[RunRequest], dispatch: str) -> tuple[str, list[str]]:
    """Record the grid as running; returns its id and the grids found abandoned."""
    code = requests[0].code_version if requests else ""
    grid_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{spec.key()[:8]}"
    abandoned = start_grid(
        warehouse, grid_id=grid_id, symbol=symbol, preset=preset, spec=spec.to_dict(),
        spec_key=spec.key(), data_version=data_version, code_version=code, dispatch=dispatch,
        n_configs=len(requests),
    )
    return grid_id, abandoned


def split_reused(warehouse: Path, grid_id: str, requests: list[RunRequest], *, force: bool,
                 ) -> tuple[list[RunRequest], list[str]]:
    """Requests to train, and run_ids already trained on the same data and code (linked)."""
    done = set() if force else completed_run_ids(warehouse, [r.run_id for r in requests])
    reused = [r.run_id for r in requests if r.run_id in done]
    link_runs(warehouse, grid_id, reused, reused=True)
    return [r for r in requests if r.run_id not in done], reused


def store_outcomes(warehouse: Path, grid_id: str, outcomes: list[RunOutcome]) -> int:
    """The single writer: runs, epoch metrics, predictions and feature keys, one transaction."""
    return store_run_results(warehouse, grid_id, outcome_frames(outcomes, grid_id).as_dict())


def store_shard(warehouse: Path, grid_id: str, shard: dict) -> int:
    """Load one shard's Parquet results into the warehouse; returns the shard's failed runs.

    A run whose results file is missing (the worker died, the flow run crashed or timed
    out) is stored as a failed run naming the missing file, so the next run of the grid
    trains it again.
    """
    frames, missing = [], []
    for request in (RunRequest.from_dict(r) for r in shard["requests"]):
        location = f"{shard['location'].rstrip('/')}/{request.run_id}"
        try:
            frames.append(read_frames(location))
        except FileNotFoundError as exc:
            missing.append(RunOutcome(request, None, f"{exc} (shard flow run {shard['state']})"))
    if missing:
        frames.append(outcome_frames(missing, grid_id))
    merged = RunFrames.concat(frames)
    store_run_results(warehouse, grid_id, merged.as_dict())
    return int((merged.runs["status"] == "failed").sum())


@contextmanager
def failing_grid(warehouse: Path, grid_id: str) -> Iterator[None]:
    """Mark the grid ``failed`` with the error's line when storing its results fails (a full
    disk, a damaged file): never left ``running``. Runs stored before the failure stay
    whole (each store is one transaction) and are reused by the next grid. When even that
    small write fails (the disk is still full), the next grid marks it interrupted."""
    try:
        yield
    except WarehouseError as exc:
        with suppress(WarehouseError):
            finish_grid(warehouse, grid_id, status="failed", n_trained=0, n_reused=0,
                        n_failed=0, message=f"stopped: {exc}")
        raise


def close_grid(warehouse: Path, grid_id: str, *, trained: int, reused: int, failed: int,
               seconds: float) -> GridRun:
    status = "completed" if failed == 0 else "completed_with_failures"
    run = GridRun(grid_id, status, trained, reused, failed, round(seconds, 2), str(warehouse))
    finish_grid(warehouse, grid_id, status=status, n_trained=trained, n_reused=reused,
                n_failed=failed, message=f"{run.summary()} in {seconds:.1f}s")
    return run


def follow_outcomes(packs: Iterable[list[RunOutcome]], total: int,
                    deliver: Callable[[list[RunOutcome]], None],
                    log: Callable[[str], None] = print,
                    on_fraction: Callable[[float], None] | None = None) -> int:
    """Deliver each finished pack's outcomes, log a line per run; returns the failed runs."""
    progress = GridProgress(total=total)
    for outcomes in packs:
        deliver(outcomes)
        for outcome in outcomes:
            progress.advance(failed=outcome.error is not None)
            line = progress.line(describe(outcome))
            log(line)
            notify(progress, line)
        if on_fraction is not None:
            on_fraction(progress.fraction)
    return progress.failed


# --- the whole grid, without Prefect ------------------------------------------------------

def run_grid(spec: GridSpec, settings: Settings, *, symbol: str = "ETH", preset: str | None = None,
             force: bool = False, pack_size: int = 0, pack_mode: str = "streams",
             slots_per_gpu: int = 2, log: Callable[[str], None] = print) -> GridRun:
    """Train every config of ``spec`` on the symbol's validated prices in this process.

    The same steps, devices, packs and thread counts as the ``train-grid`` flow's local
    dispatch; GPU packs run without Prefect's per-GPU concurrency limits (one process).
    """
    data_version, _, prices_path = gated_prices(spec, settings, symbol)
    requests = grid_requests(spec, symbol=symbol, data_version=data_version,
                             prices_path=prices_path, output_dir=settings.output_dir)
    grid_id, _ = open_grid(settings.warehouse, spec, preset, symbol, data_version, requests, "local")
    todo, reused = split_reused(settings.warehouse, grid_id, requests, force=force)
    started = time.perf_counter()
    failed = 0
    if todo:
        gpus = gpu_count()
        packs, _, _ = plan_host_packs(todo, pack_size, pack_mode, gpus=gpus,
                                      slots_per_gpu=slots_per_gpu, output_dir=settings.output_dir)
        plan = plan_devices(len(packs), gpu_count=gpus, slots_per_gpu=slots_per_gpu)
        with failing_grid(settings.warehouse, grid_id), ThreadPoolExecutor(max_workers=plan.workers) as pool:
            futures = [pool.submit(train_placed_pack, pack, pack_mode, plan.cpu_threads)
                       for pack in plan.place(packs)]
            failed = follow_outcomes(
                (f.result() for f in as_completed(futures)), len(todo),
                lambda outcomes: store_outcomes(settings.warehouse, grid_id, outcomes), log)
    return close_grid(settings.warehouse, grid_id, trained=len(todo) - failed, reused=len(reused),
                      failed=failed, seconds=time.perf_counter() - started)



# --- before a grid: what it would train ---------------------------------------------------

@dataclass(frozen=True)
class GridPlan:
    """What a grid would do on the stored prices, found without Prefect and without writing a
    grid: the CLI says it from the first seconds and skips the engine when nothing is to train."""

    data_version: str
    rows: int
    requests: list[RunRequest]
    to_train: int
    reused: int
    finished_grid: str | None = None  # an earlier grid of these very runs, with nothing failed
    report_path: str | None = None  # its latest report's index.html

    @property
    def reused_grid(self) -> bool:
        return self.to_train == 0 and self.finished_grid is not None


def plan_grid(spec: GridSpec, settings: Settings, *, symbol: str, force: bool = False) -> GridPlan:
    """Gate the prices, check the spec fits them and count the configs to train and to reuse."""
    data_version, rows, prices_path = gated_prices(spec, settings, symbol)
    requests = grid_requests(spec, symbol=symbol, data_version=data_version,
                             prices_path=prices_path, output_dir=settings.output_dir)
    ids = [r.run_id for r in requests]
    done = set() if force else completed_run_ids(settings.warehouse, ids)
    finished = None
    if not force and len(done) == len(set(ids)):
        finished = find_finished_grid(settings.warehouse, symbol=symbol, spec_key=spec.key(),
                                      data_version=data_version,
                                      code_version=requests[0].code_version, run_ids=ids)
    return GridPlan(data_version, rows, requests, to_train=len(set(ids) - done), reused=len(done),
                    finished_grid=finished[0] if finished else None,
                    report_path=finished[1] if finished else None)


# --- one config: `seqlab train` -----------------------------------------------------------

@dataclass(frozen=True)
class SingleRun:
    """A `seqlab train` run as stored: its run_id, its one-config grid and result (both None
    when an identical run was stored before: then nothing is written)."""

    run_id: str
    grid_id: str | None
    reused: bool
    outcome: RunOutcome | None


def train_single(config: TrainConfig, settings: Settings, *, symbol: str, force: bool = False,
                 on_epoch: Callable | None = None) -> SingleRun:
    """Train one config on the symbol's validated prices and store it like any grid member.

    It is a one-config grid (preset ``train``): the same run_id, tables and reuse as a grid
    run, so an identical config on the same data and code is reused unless ``force``. The
    config's device says where it trains, never which run it is.
    """
    identity = replace(config, device="auto")
    spec = GridSpec(cells=(config.cell,), depths=(config.depth,), norms=(config.norm,),
                    feature_sets=(config.feature_set,), seeds=(config.seed,),
                    epochs=config.epochs, lookback=config.lookback, hidden=config.hidden,
                    batch_size=config.batch_size, lr=config.lr, val_fraction=config.val_fraction)
    data_version, _, prices_path = gated_prices(spec, settings, symbol)
    [request] = plan_requests([identity], symbol=symbol, data_version=data_version,
                              code=code_version(), prices_path=prices_path,
                              checkpoint_dir=str(settings.output_dir / "checkpoints"))
    if not force and completed_run_ids(settings.warehouse, [request.run_id]):
        return SingleRun(request.run_id, None, True, None)  # no grid row for a run not made
    grid_id, _ = open_grid(settings.warehouse, spec, SINGLE_RUN_PRESET, symbol, data_version,
                           [request], "local")
    todo, reused = split_reused(settings.warehouse, grid_id, [request], force=force)
    started, outcome, failed = time.perf_counter(), None, 0
    if todo:
        from seqlab.engine.graphed import train_on_device

        placed = request.on_device(config.device)
        try:
            result = train_on_device(placed.placed_config(), read_prices(prices_path),
                                     checkpoint_dir=Path(request.checkpoint_dir), on_epoch=on_epoch)
            outcome = RunOutcome(placed, result, None, "")
        except Exception as exc:  # stored as a failed run, then raised to the caller
            outcome = RunOutcome(placed, None, f"{type(exc).__name__}: {exc}", "")
        with failing_grid(settings.warehouse, grid_id):
            store_outcomes(settings.warehouse, grid_id, [outcome])
        failed = int(outcome.error is not None)
    close_grid(settings.warehouse, grid_id, trained=len(todo) - failed, reused=len(reused),
               failed=failed, seconds=time.perf_counter() - started)
    return SingleRun(request.run_id, grid_id, bool(reused), outcome)
