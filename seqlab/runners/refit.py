"""Champion configs refitted on prices through given dates, stored like any grid.

The one place forecasting touches a grid's life (open, reuse, train, deliver, close): each
refit date is its own grid (preset ``refit``, the prices through that date as its data), and
the runs of every date train together on this host's devices, in packs where the device
allows, through the same runtime as ``run_grid``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from seqlab.config import Settings
from seqlab.engine.config import TrainConfig
from seqlab.grid.execute import train_placed_pack
from seqlab.grid.plan import gpu_count, plan_devices, plan_host_packs
from seqlab.grid.requests import RunOutcome, RunRequest, code_version, plan_requests
from seqlab.grid.run import close_grid, follow_outcomes, split_reused, store_outcomes
from seqlab.schemas.symbols import check_symbol
from seqlab.warehouse.forecasts import refit_checkpoints
from seqlab.warehouse.runs import REFIT_PRESET, start_grid
from seqlab.warehouse.versioning import frame_data_version


@dataclass(frozen=True)
class RefitSet:
    """Configs to refit on one symbol's prices through ``through`` (a Parquet snapshot)."""

    through: dt.date  # the last stored day in the prices
    configs: tuple[TrainConfig, ...]
    prices_path: str
    data_version: str
    rows: int


@dataclass(frozen=True)
class RefitRun:
    """One refitted config as stored: its run, grid, status and checkpoint."""

    through: dt.date
    config: TrainConfig
    run_id: str
    grid_id: str
    status: str  # ok | diverged | failed
    checkpoint_path: str | None


def snapshot_through(prices: pl.DataFrame, symbol: str, folder: Path) -> tuple[str, str]:
    """(path, data_version) of ``prices`` written once as Parquet, named by its version."""
    version = frame_data_version(prices)
    target = Path(folder) / f"prices-{check_symbol(symbol)}-{version[:16]}.parquet"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".parquet.tmp")
        prices.write_parquet(partial)
        partial.replace(target)
    return str(target), version


@dataclass(frozen=True)
class RefitSpec:
    """What a refit grid records as its spec (``grids.spec``): the champions refitted, the
    full grid they came from and the last day of their prices; its key names the grid."""

    source_grid: str
    through: dt.date
    configs: tuple[TrainConfig, ...]

    def to_dict(self) -> dict:
        return {"refit_of": self.source_grid, "through": self.through.isoformat(),
                "configs": [c.to_dict() for c in self.configs]}

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _open_refit_grid(warehouse: Path, symbol: str, spec: RefitSpec, data_version: str,
                     requests: list[RunRequest]) -> str:
    grid_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{spec.key()[:8]}"
    start_grid(warehouse, grid_id=grid_id, symbol=symbol, preset=REFIT_PRESET,
               spec=spec.to_dict(), spec_key=spec.key(), data_version=data_version,
               code_version=requests[0].code_version, dispatch="local",
               n_configs=len(requests))
    return grid_id


def train_refits(settings: Settings, symbol: str, refits: Sequence[RefitSet], *,
                 source_grid: str, pack_mode: str = "streams", pack_size: int = 0,
                 slots_per_gpu: int = 2, log: Callable[[str], None] = print) -> list[RefitRun]:
    """Open one grid per refit set, reuse what is stored, train the rest of all sets
    together, store each outcome in its own grid and close every grid with its counts."""
    code = code_version()
    owner: dict[str, str] = {}  # run_id -> the refit grid it is delivered to
    opened: list[tuple[RefitSet, str, list[RunRequest], list[RunRequest], list[str]]] = []
    for refit in refits:
        requests = plan_requests(list(refit.configs), symbol=symbol,
                                 data_version=refit.data_version, code=code,
                                 prices_path=refit.prices_path,
                                 checkpoint_dir=str(settings.output_dir / "checkpoints"))
        grid_id = _open_refit_grid(settings.warehouse, symbol,
                                   RefitSpec(source_grid, refit.through, refit.configs),
                                   refit.data_version, requests)
        todo, reused = split_reused(settings.warehouse, grid_id, requests, force=False)
        owner.update({r.run_id: grid_id for r in todo})
        opened.append((refit, grid_id, requests, todo, reused))
    todo_all = [r for *_, todo, _ in opened for r in todo]
    failed_by_grid: dict[str, int] = {}
    started = time.perf_counter()

    def deliver(outcomes: list[RunOutcome]) -> None:
        by_grid: dict[str, list[RunOutcome]] = {}
        for outcome in outcomes:
            by_grid.setdefault(owner[outcome.request.run_id], []).append(outcome)
        for grid_id, mine in by_grid.items():
            store_outcomes(settings.warehouse, grid_id, mine)
            failed_by_grid[grid_id] = failed_by_grid.get(grid_id, 0) + sum(
                o.error is not None for o in mine)

    if todo_all:
        gpus = gpu_count()
        # Packs group requests that share a prices snapshot: a pack never mixes refit dates.
        packs, _, _ = plan_host_packs(todo_all, pack_size, pack_mode, gpus=gpus,
                                      slots_per_gpu=slots_per_gpu, output_dir=settings.output_dir)
        plan = plan_devices(len(packs), gpu_count=gpus, slots_per_gpu=slots_per_gpu)
        with ThreadPoolExecutor(max_workers=plan.workers) as pool:
            futures = [pool.submit(train_placed_pack, pack, pack_mode, plan.cpu_threads)
                       for pack in plan.place(packs)]
            follow_outcomes((f.result() for f in as_completed(futures)), len(todo_all),
                            deliver, log)
    seconds = time.perf_counter() - started
    for _, grid_id, _, todo, reused in opened:
        failed = failed_by_grid.get(grid_id, 0)
        close_grid(settings.warehouse, grid_id, trained=len(todo) - failed, reused=len(reused),
                   failed=failed, seconds=seconds)
    stored = refit_checkpoints(settings.warehouse,
                               [r.run_id for _, _, requests, _, _ in opened for r in requests])
    return [
        RefitRun(refit.through, request.config, request.run_id, grid_id,
                 *stored.get(request.run_id, ("failed", None)))
        for refit, grid_id, requests, _, _ in opened for request in requests
    ]
