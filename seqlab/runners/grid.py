"""A grid's life in the warehouse, written once: prepare, open, reuse, deliver, close.

Every way a grid is trained goes through :class:`GridLedger`: :func:`run_grid` (in this
process, no Prefect), :func:`train_single` (``seqlab train``: a one-config grid), carried
import (``seqlab.runners.carried``), :func:`plan_grid` (what a grid would do, before any
grid is written) and the ``train-grid`` flow, whose tasks (``seqlab/tasks/grid.py``) wrap
these same functions one by one. Training itself is the grid kit's (``seqlab.grid``), which
needs no warehouse.

Training a host's share is ``seqlab.runners.host``. A ledger in five calls::

    prepared = prepare_grid(spec, settings, symbol)      # gate, fit, snapshot, requests
    ledger = GridLedger.open(settings.warehouse, spec, prepared, preset=..., dispatch="local")
    for outcomes in ...:                                 # ledger.todo, trained anywhere
        failed += ledger.deliver(outcomes)               # or deliver_frames / deliver_shard
    closed = ledger.close(failed=failed)                 # counts, status, the grids row
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from seqlab.config import Settings
from seqlab.engine.config import TrainConfig
from seqlab.grid.execute import train_request
from seqlab.grid.requests import RunOutcome, RunRequest, build_grid, code_version, plan_requests
from seqlab.grid.results import RunFrames, outcome_frames, read_frames
from seqlab.grid.spec import GridSpec, check_spec_fits_data
from seqlab.runners.host import train_on_host
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
class ClosedGrid:
    """How a grid ended, as its ``grids`` row says: what the CLI prints and the flow returns."""

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


# --- before a grid: the prices it trains on and its requests ------------------------------

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


@dataclass(frozen=True)
class PreparedGrid:
    """A grid ready to open: the gate passed, the spec fits the prices, the prices workers
    read are written once, and there is one request per config."""

    symbol: str
    data_version: str
    rows: int
    prices_path: str
    requests: list[RunRequest]


def prepare_grid(spec: GridSpec, settings: Settings, symbol: str, *,
                 configs: list[TrainConfig] | None = None,
                 snapshot: Callable[[Path, str, str, Path], str] = snapshot_prices,
                 ) -> PreparedGrid:
    """Gate the symbol's prices, check ``spec`` fits them, snapshot them and build the requests
    (``configs``, default the spec's, keyed by this code's version). ``snapshot`` is the step
    that writes the snapshot (the flow passes its retried task)."""
    data_version, rows = gate_prices(settings.warehouse, symbol)
    check_spec_fits_data(spec, rows)
    prices_path = snapshot(settings.warehouse, symbol, data_version,
                           settings.output_dir / "snapshots")
    requests = plan_requests(
        build_grid(spec) if configs is None else configs, symbol=symbol,
        data_version=data_version, code=code_version(), prices_path=prices_path,
        checkpoint_dir=str(Path(settings.output_dir) / "checkpoints"))
    return PreparedGrid(symbol, data_version, rows, prices_path, requests)


def already_trained(warehouse: Path, requests: list[RunRequest], *, force: bool) -> set[str]:
    """run_ids among ``requests`` stored with a result on the same data by the same code
    (none with ``force``): what any grid of these requests reuses instead of training."""
    return set() if force else completed_run_ids(warehouse, [r.run_id for r in requests])


# --- the ledger ---------------------------------------------------------------------------

@dataclass(frozen=True)
class GridLedger:
    """One grid's record in the warehouse, from open to close; the one owner of that life.

    :meth:`open` writes the grid as running and links the runs it reuses; ``todo`` is what
    is left to train. Outcomes trained anywhere (threads here, Prefect tasks, pool shards,
    a carried folder) are stored with :meth:`deliver`, :meth:`deliver_frames` or
    :meth:`deliver_shard`, each returning the failed runs it stored; :meth:`close` takes
    their sum and writes the counts. A frozen value, so it passes through Prefect tasks.
    """

    warehouse: Path
    grid_id: str
    todo: list[RunRequest]
    reused: list[str]
    abandoned: list[str] = field(default_factory=list)  # grids found left running, now interrupted
    opened_at: float = field(default_factory=time.perf_counter)

    @classmethod
    def open(cls, warehouse: Path, spec: GridSpec, prepared: PreparedGrid, *,
             preset: str | None, dispatch: str, force: bool = False) -> GridLedger:
        """Record the grid of ``prepared``'s requests as running; split off the reused runs."""
        requests = prepared.requests
        grid_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{spec.key()[:8]}"
        abandoned = start_grid(
            warehouse, grid_id=grid_id, symbol=prepared.symbol, preset=preset,
            spec=spec.to_dict(), spec_key=spec.key(), data_version=prepared.data_version,
            code_version=requests[0].code_version if requests else "", dispatch=dispatch,
            n_configs=len(requests))
        done = already_trained(warehouse, requests, force=force)
        reused = [r.run_id for r in requests if r.run_id in done]
        link_runs(warehouse, grid_id, reused, reused=True)
        return cls(Path(warehouse), grid_id, [r for r in requests if r.run_id not in done],
                   reused, abandoned)

    def deliver(self, outcomes: list[RunOutcome]) -> int:
        """Store finished runs (runs, epoch metrics, predictions, feature keys) in one
        transaction; returns how many of them failed."""
        return self.deliver_frames(outcome_frames(outcomes, self.grid_id))

    def deliver_frames(self, frames: RunFrames) -> int:
        """Store result frames (Parquet brought back, carried results) in one transaction."""
        store_run_results(self.warehouse, self.grid_id, frames.as_dict())
        return int((frames.runs["status"] == "failed").sum())

    def deliver_shard(self, shard: dict) -> int:
        """Store one pool shard's Parquet results; returns the shard's failed runs.

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
            frames.append(outcome_frames(missing, self.grid_id))
        return self.deliver_frames(RunFrames.concat(frames))

    @contextmanager
    def failing(self) -> Iterator[None]:
        """Mark the grid ``failed`` with the error's line when storing its results fails (a
        full disk, a damaged file): never left ``running``. Runs stored before the failure
        stay whole (each store is one transaction) and are reused by the next grid. When even
        that small write fails (the disk is still full), the next grid marks it interrupted."""
        try:
            yield
        except WarehouseError as exc:
            with suppress(WarehouseError):
                finish_grid(self.warehouse, self.grid_id, status="failed", n_trained=0,
                            n_reused=0, n_failed=0, message=f"stopped: {exc}")
            raise

    def close(self, *, failed: int) -> ClosedGrid:
        """Write how the grid ended: the todo less ``failed`` trained, the reused, the failed."""
        seconds = time.perf_counter() - self.opened_at
        status = "completed" if failed == 0 else "completed_with_failures"
        closed = ClosedGrid(self.grid_id, status, len(self.todo) - failed, len(self.reused),
                            failed, round(seconds, 2), str(self.warehouse))
        finish_grid(self.warehouse, self.grid_id, status=status, n_trained=closed.trained,
                    n_reused=closed.reused, n_failed=failed,
                    message=f"{closed.summary()} in {seconds:.1f}s")
        return closed


# --- the whole grid, without Prefect ------------------------------------------------------

def run_grid(spec: GridSpec, settings: Settings, *, symbol: str = "ETH", preset: str | None = None,
             force: bool = False, pack_size: int = 0, pack_mode: str = "streams",
             slots_per_gpu: int = 2, log: Callable[[str], None] = print) -> ClosedGrid:
    """Train every config of ``spec`` on the symbol's validated prices in this process.

    The same steps, devices, packs and thread counts as the ``train-grid`` flow's local
    dispatch; GPU packs run without Prefect's per-GPU concurrency limits (one process).
    """
    prepared = prepare_grid(spec, settings, symbol)
    ledger = GridLedger.open(settings.warehouse, spec, prepared, preset=preset, dispatch="local",
                             force=force)
    failed = 0
    if ledger.todo:
        with ledger.failing():
            failed = train_on_host(ledger.todo, ledger.deliver, pack_size=pack_size,
                                   pack_mode=pack_mode, slots_per_gpu=slots_per_gpu,
                                   output_dir=settings.output_dir, log=log)
    return ledger.close(failed=failed)


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
    prepared = prepare_grid(spec, settings, symbol)
    requests = prepared.requests
    ids = [r.run_id for r in requests]
    done = already_trained(settings.warehouse, requests, force=force)
    finished = None
    if not force and len(done) == len(set(ids)):
        finished = find_finished_grid(settings.warehouse, symbol=symbol, spec_key=spec.key(),
                                      data_version=prepared.data_version,
                                      code_version=requests[0].code_version, run_ids=ids)
    return GridPlan(prepared.data_version, prepared.rows, requests,
                    to_train=len(set(ids) - done), reused=len(done),
                    finished_grid=finished[0] if finished else None,
                    report_path=finished[1] if finished else None)


# --- one config: `seqlab train` -----------------------------------------------------------

@dataclass(frozen=True)
class SingleConfigResult:
    """A `seqlab train` config as stored: its run_id, its one-config grid and outcome (both
    None when an identical run was stored before: then nothing is written)."""

    run_id: str
    grid_id: str | None
    reused: bool
    outcome: RunOutcome | None


def single_config_spec(config: TrainConfig) -> GridSpec:
    """The one-config grid a `seqlab train` config is stored as."""
    return GridSpec(cells=(config.cell,), depths=(config.depth,), norms=(config.norm,),
                    feature_sets=(config.feature_set,), seeds=(config.seed,),
                    epochs=config.epochs, lookback=config.lookback, hidden=config.hidden,
                    batch_size=config.batch_size, lr=config.lr, val_fraction=config.val_fraction)


def train_single(config: TrainConfig, settings: Settings, *, symbol: str, force: bool = False,
                 on_epoch: Callable | None = None) -> SingleConfigResult:
    """Train one config on the symbol's validated prices and store it like any grid member.

    It is a one-config grid (preset ``train``): the same run_id, tables and reuse as a grid
    run, so an identical config on the same data and code is reused unless ``force``. The
    config's device says where it trains, never which run it is.
    """
    spec = single_config_spec(config)
    prepared = prepare_grid(spec, settings, symbol, configs=[replace(config, device="auto")])
    [request] = prepared.requests
    if already_trained(settings.warehouse, [request], force=force):
        return SingleConfigResult(request.run_id, None, True, None)  # no grid row for a run not made
    ledger = GridLedger.open(settings.warehouse, spec, prepared, preset=SINGLE_RUN_PRESET,
                             dispatch="local", force=force)
    outcome, failed = None, 0
    if ledger.todo:
        outcome = train_request(request.on_device(config.device), on_epoch=on_epoch)
        with ledger.failing():
            failed = ledger.deliver([outcome])
    ledger.close(failed=failed)
    return SingleConfigResult(request.run_id, ledger.grid_id, bool(ledger.reused), outcome)
