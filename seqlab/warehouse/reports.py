"""What a grid report reads from the warehouse, and the record of each report build."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from seqlab.warehouse.clock import utc_now
from seqlab.warehouse.connection import connect, connect_reader
from seqlab.warehouse.errors import WarehouseQueryError, WarehouseStoreError
from seqlab.warehouse.runs import REFIT_PRESET

# Per-grid frames the report needs, each a query with $grid as the grid id.
_GRID_QUERIES = {
    "runs": "SELECT * FROM report_runs WHERE grid_id = $grid ORDER BY cell, depth, norm, feature_set, seed",
    "leaderboard": "SELECT * FROM leaderboard WHERE grid_id = $grid ORDER BY rank, cell, depth, norm, feature_set",
    "convergence": "SELECT * FROM convergence WHERE grid_id = $grid ORDER BY cell, depth, norm, feature_set, seed",
    "stability": "SELECT * FROM stability WHERE grid_id = $grid ORDER BY cell, depth, norm, feature_set, seed",
    "epochs": """
        SELECT rr.run_id, rr.cell, rr.depth, rr.norm, rr.feature_set, rr.seed,
            e.epoch, e.train_loss, e.test_loss, e.val_loss
        FROM report_runs rr JOIN epoch_metrics e ON e.run_id = rr.run_id
        WHERE rr.grid_id = $grid ORDER BY rr.run_id, e.epoch""",
    "predictions": """
        SELECT p.* FROM predictions p JOIN grid_runs gr ON gr.run_id = p.run_id
        WHERE gr.grid_id = $grid ORDER BY p.run_id, p.date""",
    "features": """
        SELECT DISTINCT f.* FROM features f JOIN report_runs rr ON rr.feature_key = f.feature_key
        WHERE rr.grid_id = $grid ORDER BY f.feature_set, f.feature_key""",
}
# Per-symbol frames: where the data came from and how it was checked, as of the grid's start.
_DATA_QUERIES = {
    "ingestions": """
        SELECT * FROM ingestions WHERE symbol = $symbol AND started_at <= $until
        ORDER BY started_at, ingestion_id""",
    "quarantine": """
        SELECT q.ingestion_id, q.rule, count(*) AS rows FROM quarantine q
        JOIN ingestions i ON i.ingestion_id = q.ingestion_id
        WHERE q.symbol = $symbol AND i.started_at <= $until
        GROUP BY ALL ORDER BY q.ingestion_id, q.rule""",
    # The latest validation run of the grid's data_version.
    "validations": """
        SELECT * FROM validations WHERE validation_id = (
            SELECT arg_max(validation_id, validated_at) FROM validations
            WHERE symbol = $symbol AND data_version = $version)
        ORDER BY severity, expectation""",
    "datasets": "SELECT * FROM datasets WHERE symbol = $symbol",
    # The forecast ledger's scored rows and the newest live forecasts (the Track record).
    "forecast_scores": """
        SELECT * FROM forecast_scores WHERE symbol = $symbol
        ORDER BY mode, batch_id, config_key, target_date""",
    "latest_forecasts": """
        SELECT * FROM forecasts WHERE symbol = $symbol AND mode = 'live' AND target_date = (
            SELECT max(target_date) FROM forecasts WHERE symbol = $symbol AND mode = 'live')
        ORDER BY champion_rank""",
}


@dataclass(frozen=True)
class ReportInputs:
    """Everything a grid report shows, as read from the warehouse in one connection."""

    grid: dict
    frames: dict[str, pl.DataFrame]


def latest_grid_id(path: Path, *, timeout_s: float = 10.0) -> str:
    """The most recently started grid that is not a refit of champions (a retrain's or a
    backtest's); WarehouseQueryError when the warehouse has none."""
    with connect_reader(path, timeout_s=timeout_s) as con:
        rows = con.execute(
            "SELECT grid_id FROM grids WHERE preset IS DISTINCT FROM ? "
            "ORDER BY started_at DESC, grid_id DESC LIMIT 1", [REFIT_PRESET],
        ).fetchall()
    if not rows:
        raise WarehouseQueryError(f"warehouse {path} has no grids yet; train one first")
    return rows[0][0]


def load_report_inputs(path: Path, grid_id: str, *, timeout_s: float = 10.0) -> ReportInputs:
    """Every frame the report of ``grid_id`` needs.

    Reads through a read-only open; an older file is migrated first so it has the report
    views (migration 3). The file is verified whole first (WarehouseDamaged otherwise): a
    report must not be drawn from half a file. Raises WarehouseQueryError naming the grid
    when it is not there.
    """
    with connect_reader(path, timeout_s=timeout_s, verify=True) as con:
        grids = con.sql("SELECT * FROM grids WHERE grid_id = $grid", params={"grid": grid_id}).pl()
        if grids.is_empty():
            known = [r[0] for r in con.execute(
                "SELECT grid_id FROM grids ORDER BY started_at DESC LIMIT 5").fetchall()]
            raise WarehouseQueryError(
                f"grid {grid_id!r} is not in warehouse {path}; latest grids: {known or 'none'}"
            )
        grid = grids.to_dicts()[0]
        frames = {
            name: con.sql(sql, params={"grid": grid_id}).pl() for name, sql in _GRID_QUERIES.items()
        }
        until = grid["started_at"]
        for name, sql in _DATA_QUERIES.items():
            params = {"symbol": grid["symbol"], "until": until, "version": grid["data_version"]}
            used = {k: v for k, v in params.items() if f"${k}" in sql}
            frames[name] = con.sql(sql, params=used).pl()
    return ReportInputs(grid=grid, frames=frames)


@dataclass(frozen=True)
class ReportRecord:
    """One report build, as the ``reports`` table keeps it."""

    report_id: str
    grid_id: str
    out_dir: str
    html_path: str
    markdown_path: str
    figures: list[str]
    n_runs: int
    claims_summary: dict[str, str]
    html_bytes: int
    seconds: float
    seqlab_version: str
    built_at: datetime | None = None


def record_report(
    path: Path, record: ReportRecord, claims: pl.DataFrame, *, timeout_s: float = 10.0
) -> None:
    """Store the build and its claim comparisons in one transaction.

    ``claims`` has the ``claim_results`` columns except report_id and grid_id.
    """
    built_at = record.built_at or utc_now()
    rows = claims.with_columns(
        report_id=pl.lit(record.report_id), grid_id=pl.lit(record.grid_id)
    )
    with connect(path, timeout_s=timeout_s) as con:
        con.register("seqlab_claims", rows.to_arrow())
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "INSERT INTO reports VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [record.report_id, record.grid_id, built_at, record.out_dir, record.html_path,
                 record.markdown_path, json.dumps(record.figures), record.n_runs,
                 json.dumps(record.claims_summary, sort_keys=True), record.html_bytes,
                 record.seconds, record.seqlab_version],
            )  # fmt: skip
            if rows.height:
                columns = ", ".join(rows.columns)
                con.execute(
                    f"INSERT INTO claim_results ({columns}) SELECT {columns} FROM seqlab_claims"
                )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise WarehouseStoreError(
                f"recording report {record.report_id} of grid {record.grid_id} in {path} "
                f"failed: {exc}"
            ) from exc
