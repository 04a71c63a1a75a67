"""The forecast ledger: every forecast kept as written and scored once its target day arrives.

``forecasts`` holds one row per forecast (``live`` from a retrain, ``backtest`` from a
walk-forward). A row is never changed after it is written except by scoring, which fills
``actual_usd`` once, with the target day's close *as first stored*: a later revision of that
price (``price_history`` keeps the replaced values) leaves the score alone, and the
``forecast_scores`` view says so in ``actual_revised`` beside the close stored now.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from seqlab.schemas.forecasts import FORECAST_SCHEMA
from seqlab.warehouse.clock import utc_now
from seqlab.warehouse.connection import connect, connect_reader

# Each (symbol, date)'s close as first stored: the oldest of the replaced versions kept in
# price_history and the row in prices (updated_at is when each version was stored).
_FIRST_STORED = """
    SELECT symbol, date, arg_min(close, stored_at) AS close, min(stored_at) AS stored_at
    FROM (
        SELECT symbol, date, close, updated_at AS stored_at FROM prices WHERE symbol = $symbol
        UNION ALL
        SELECT symbol, date, close, updated_at FROM price_history
        WHERE symbol = $symbol AND updated_at IS NOT NULL
    ) GROUP BY symbol, date
"""


def store_forecasts(path: Path, forecasts: pl.DataFrame, *, timeout_s: float = 10.0) -> int:
    """Insert forecasts not yet in the ledger (the same forecast_id is never written twice,
    so a rerun on the same data adds nothing); returns the rows inserted."""
    missing = [c for c in FORECAST_SCHEMA if c not in forecasts.columns]
    if missing:
        raise ValueError(f"forecast frame lacks columns {missing}")
    frame = forecasts.select(list(FORECAST_SCHEMA)).cast(FORECAST_SCHEMA)  # noqa: F841 (SQL reads it)
    with connect(path, timeout_s=timeout_s) as con:
        before = con.execute("SELECT count(*) FROM forecasts").fetchone()[0]
        con.execute(f"INSERT INTO forecasts ({', '.join(FORECAST_SCHEMA)}) "
                    "SELECT * FROM frame ON CONFLICT DO NOTHING")
        return con.execute("SELECT count(*) FROM forecasts").fetchone()[0] - before


def score_forecasts(path: Path, symbol: str, *, timeout_s: float = 10.0) -> int:
    """Score every unscored forecast of ``symbol`` whose target close is stored, in one
    statement, against that close as first stored; returns the rows scored now."""
    with connect(path, timeout_s=timeout_s) as con:
        con.execute(
            f"""
            UPDATE forecasts SET actual_usd = first.close, actual_stored_at = first.stored_at,
                scored_at = $now
            FROM ({_FIRST_STORED}) first
            WHERE forecasts.actual_usd IS NULL AND forecasts.symbol = $symbol
              AND first.date = forecasts.target_date
            """,
            {"symbol": symbol, "now": utc_now()},
        )
        return con.fetchone()[0]


def load_forecast_scores(path: Path, symbol: str, *, mode: str | None = None,
                         timeout_s: float = 10.0) -> pl.DataFrame:
    """The symbol's scored forecasts (the ``forecast_scores`` view), in target order."""
    with connect_reader(path, timeout_s=timeout_s) as con:
        return con.sql(
            "SELECT * FROM forecast_scores WHERE symbol = $symbol "
            "AND ($mode IS NULL OR mode = $mode) ORDER BY mode, target_date, champion_rank",
            params={"symbol": symbol, "mode": mode},
        ).pl()


def load_forecasts(path: Path, symbol: str, *, mode: str | None = None,
                   batch_id: str | None = None, timeout_s: float = 10.0) -> pl.DataFrame:
    """The symbol's forecasts as written (scored or not), in target order."""
    with connect_reader(path, timeout_s=timeout_s) as con:
        return con.sql(
            "SELECT * FROM forecasts WHERE symbol = $symbol AND ($mode IS NULL OR mode = $mode) "
            "AND ($batch IS NULL OR batch_id = $batch) "
            "ORDER BY mode, target_date, champion_rank, origin_date",
            params={"symbol": symbol, "mode": mode, "batch": batch_id},
        ).pl()


def champion_configs(path: Path, symbol: str, *, grid_id: str | None, top: int,
                     not_study: tuple[str, ...], timeout_s: float = 10.0,
                     ) -> tuple[str, list[dict]]:
    """(grid_id, the top ``top`` runs' configs as dicts, best first) of ``grid_id`` or, when
    None, of the symbol's latest grid whose preset is not in ``not_study``, ranked on
    validation loss (runs selected on validation, not failed). ValueError when there is none."""
    with connect_reader(path, timeout_s=timeout_s) as con:
        if grid_id is None:
            row = con.execute(
                "SELECT grid_id FROM grids WHERE symbol = ? AND NOT list_contains(?, "
                "coalesce(preset, '')) ORDER BY started_at DESC, grid_id DESC LIMIT 1",
                [symbol, list(not_study)]).fetchone()
            if row is None:
                raise ValueError(f"no full grid of {symbol} in {path}; run `seqlab run` first")
            grid_id = row[0]
        rows = con.execute(
            """
            SELECT r.config FROM report_runs r
            WHERE r.grid_id = ? AND r.status = 'ok' AND r.selected_on = 'validation'
              AND r.best_val_loss IS NOT NULL AND isfinite(r.best_val_loss)
            ORDER BY r.best_val_loss, r.run_id LIMIT ?
            """, [grid_id, top]).fetchall()
    if not rows:
        raise ValueError(f"grid {grid_id} in {path} has no run selected on validation to refit")
    return grid_id, [json.loads(r[0]) for r in rows]


def refit_checkpoints(path: Path, run_ids: list[str], *, timeout_s: float = 10.0,
                      ) -> dict[str, tuple[str, str | None, str | None]]:
    """run_id -> (status, checkpoint path, its recorded sha256) of stored runs."""
    with connect_reader(path, timeout_s=timeout_s) as con:
        rows = con.execute("SELECT run_id, status, checkpoint_path, checkpoint_sha256 FROM runs "
                           "WHERE list_contains(?, run_id)", [run_ids]).fetchall()
    return {run_id: tuple(rest) for run_id, *rest in rows}
