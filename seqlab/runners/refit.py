"""Champion configs refitted on prices through given dates, stored like any grid.

The one place forecasting touches a grid's life: each refit date is its own grid ledger
(``seqlab.runners.grid.GridLedger``, preset ``refit``, the prices through that date as its
data), and the runs of every date train together on this host's devices, in packs where
the device allows (``seqlab.runners.host.train_on_host``, as ``run_grid`` trains).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from seqlab.config import Settings
from seqlab.engine.config import TrainConfig
from seqlab.grid.requests import RunOutcome, RunRequest, code_version, plan_requests
from seqlab.runners.grid import GridLedger, PreparedGrid
from seqlab.runners.host import train_on_host
from seqlab.schemas.symbols import check_symbol
from seqlab.warehouse.forecasts import refit_checkpoints
from seqlab.warehouse.runs import REFIT_PRESET
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
    checkpoint_sha256: str | None  # as the run recorded it: the checkpoint must still match


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
    full grid they came from and the last day of their prices; its key names the grid.
    It stands in for a GridSpec in ``GridLedger.open``, which reads only these two methods:
    refitted champions need not share the hidden size or lookback a GridSpec holds once."""

    source_grid: str
    through: dt.date
    configs: tuple[TrainConfig, ...]

    def to_dict(self) -> dict:
        return {"refit_of": self.source_grid, "through": self.through.isoformat(),
                "configs": [c.to_dict() for c in self.configs]}

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def train_refits(settings: Settings, symbol: str, refits: Sequence[RefitSet], *,
                 source_grid: str, pack_mode: str = "streams", pack_size: int = 0,
                 slots_per_gpu: int = 2, log: Callable[[str], None] = print) -> list[RefitRun]:
    """Open one grid ledger per refit set (preset ``refit``), reuse what is stored, train the
    rest of all sets together on this host, deliver each outcome to its own ledger and close
    every ledger with its failures."""
    code = code_version()
    opened: list[tuple[RefitSet, GridLedger, list[RunRequest]]] = []
    for refit in refits:
        requests = plan_requests(list(refit.configs), symbol=symbol,
                                 data_version=refit.data_version, code=code,
                                 prices_path=refit.prices_path,
                                 checkpoint_dir=str(settings.output_dir / "checkpoints"))
        prepared = PreparedGrid(symbol, refit.data_version, refit.rows, refit.prices_path, requests)
        ledger = GridLedger.open(settings.warehouse, RefitSpec(source_grid, refit.through,
                                                               refit.configs),
                                 prepared, preset=REFIT_PRESET, dispatch="local")
        opened.append((refit, ledger, requests))
    owner = {r.run_id: ledger for _, ledger, _ in opened for r in ledger.todo}
    failed: dict[str, int] = {}

    def deliver(outcomes: list[RunOutcome]) -> None:
        by_grid: dict[str, list[RunOutcome]] = {}
        for outcome in outcomes:
            by_grid.setdefault(owner[outcome.request.run_id].grid_id, []).append(outcome)
        for mine in by_grid.values():
            ledger = owner[mine[0].request.run_id]
            failed[ledger.grid_id] = failed.get(ledger.grid_id, 0) + ledger.deliver(mine)

    todo = [r for _, ledger, _ in opened for r in ledger.todo]
    if todo:
        # Packs group requests that share a prices snapshot: a pack never mixes refit dates.
        train_on_host(todo, deliver, pack_size=pack_size, pack_mode=pack_mode,
                      slots_per_gpu=slots_per_gpu, output_dir=settings.output_dir, log=log)
    for _, ledger, _ in opened:
        ledger.close(failed=failed.get(ledger.grid_id, 0))
    stored = refit_checkpoints(settings.warehouse,
                               [r.run_id for _, _, requests in opened for r in requests])
    return [RefitRun(refit.through, request.config, request.run_id, ledger.grid_id,
                     *stored.get(request.run_id, ("failed", None, None)))
            for refit, ledger, requests in opened for request in requests]
