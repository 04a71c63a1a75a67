"""Training results in the warehouse: grids, runs, epoch metrics, predictions, feature keys.

Workers never open the warehouse: they return results (local dispatch) or write Parquet
(pool dispatch), and the grid's parent process stores them here, one transaction per batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl

from seqlab.schemas.run_tables import FRAME_SCHEMAS
from seqlab.warehouse.clock import utc_now
from seqlab.warehouse.connection import connect
from seqlab.warehouse.errors import WarehouseQueryError, WarehouseStoreError
from seqlab.warehouse.grid_owners import interrupt_abandoned_grids, owner_message
from seqlab.warehouse.integrity import damage_in

_RESULT_TABLES = ("runs", "epoch_metrics", "predictions")


def _insert_columns(table: str) -> list[str]:
    """The table's frame columns (seqlab.schemas.run_tables), plus runs' stored_at stamp."""
    return [*FRAME_SCHEMAS[table], *(["stored_at"] if table == "runs" else [])]


def start_grid(
    path: Path, *, grid_id: str, symbol: str, preset: str | None, spec: dict, spec_key: str,
    data_version: str, code_version: str, dispatch: str, n_configs: int, timeout_s: float = 10.0,
) -> list[str]:
    """Record a grid as running in this process (a re-run of the same grid id starts it
    afresh); grids left running by a process that is gone are marked interrupted first.
    Returns the ids of those."""
    with connect(path, timeout_s=timeout_s) as con:
        abandoned = interrupt_abandoned_grids(con, found_by=grid_id)
        con.execute(
            """
            INSERT OR REPLACE INTO grids (grid_id, symbol, preset, spec, spec_key, data_version,
                code_version, dispatch, status, n_configs, message, started_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)
            """,
            [grid_id, symbol, preset, json.dumps(spec, sort_keys=True), spec_key, data_version,
             code_version, dispatch, n_configs, owner_message(), utc_now()],
        )
    return abandoned


def finish_grid(
    path: Path, grid_id: str, *, status: str, n_trained: int, n_reused: int, n_failed: int,
    message: str = "", timeout_s: float = 10.0,
) -> None:
    with connect(path, timeout_s=timeout_s) as con:
        finished = utc_now()
        con.execute(
            """
            UPDATE grids SET status = ?, n_trained = ?, n_reused = ?, n_failed = ?, message = ?,
                finished_at = ?, seconds = epoch(? - started_at)
            WHERE grid_id = ?
            """,
            [status, n_trained, n_reused, n_failed, message, finished, finished, grid_id],
        )


def completed_run_ids(path: Path, run_ids: list[str], *, timeout_s: float = 10.0) -> set[str]:
    """Runs already stored with a result (ok or diverged); failed runs are tried again."""
    if not run_ids or not Path(path).exists():
        return set()
    with connect(path, read_only=True, timeout_s=timeout_s) as con:
        rows = con.execute(
            "SELECT run_id FROM runs WHERE status IN ('ok', 'diverged') AND list_contains(?, run_id)",
            [run_ids],
        ).fetchall()
    return {r[0] for r in rows}


def link_runs(
    path: Path, grid_id: str, run_ids: list[str], *, reused: bool, timeout_s: float = 10.0
) -> None:
    if not run_ids:
        return
    links = pl.DataFrame({"grid_id": grid_id, "run_id": run_ids, "reused": reused})
    with connect(path, timeout_s=timeout_s) as con:
        con.register("seqlab_links", links.to_arrow())
        con.execute("INSERT OR REPLACE INTO grid_runs SELECT grid_id, run_id, reused FROM seqlab_links")


def store_run_results(
    path: Path, grid_id: str, frames: dict[str, pl.DataFrame], *, timeout_s: float = 10.0
) -> int:
    """Store finished runs whole in one transaction, replacing any earlier rows of those runs.

    ``frames`` holds ``runs``, ``epoch_metrics``, ``predictions`` and ``features`` frames.
    Replacing by run_id makes a repeated store (a retried shard, a re-run after a crash)
    leave exactly one copy of every row; feature keys are kept once.
    """
    runs = frames["runs"]
    if runs.is_empty():
        return 0
    frames = {**frames, "runs": runs.with_columns(stored_at=pl.lit(utc_now()))}
    run_ids = runs["run_id"].to_list()
    with connect(path, timeout_s=timeout_s) as con:
        for name, frame in frames.items():
            con.register(f"seqlab_new_{name}", frame.to_arrow())
        con.execute("BEGIN TRANSACTION")
        try:
            for name in _RESULT_TABLES:
                con.execute(f"DELETE FROM {name} WHERE list_contains(?, run_id)", [run_ids])
                columns = ", ".join(_insert_columns(name))
                con.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM seqlab_new_{name}")
            con.execute(
                """
                INSERT OR IGNORE INTO features
                SELECT feature_key, symbol, data_version, feature_set, fingerprint, scaler, ?
                FROM seqlab_new_features
                """,
                [utc_now()],
            )
            con.execute(
                "INSERT OR REPLACE INTO grid_runs SELECT ?, run_id, false FROM seqlab_new_runs",
                [grid_id],
            )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:  # a failed COMMIT (a full disk) ended the transaction itself
                pass
            raise damage_in(path, exc) or WarehouseStoreError(
                f"storing {len(run_ids)} runs in {path} failed: {exc}") from exc
    return len(run_ids)


def load_run_checkpoint(path: Path, run_id: str, *, timeout_s: float = 10.0
                        ) -> tuple[str | None, str, str | None] | None:
    """A stored run's checkpoint path, symbol and the checkpoint's sha256 (None for runs
    stored before it was recorded); None when no run has that id."""
    with connect(path, read_only=True, timeout_s=timeout_s) as con:
        try:
            row = con.execute("SELECT checkpoint_path, symbol, checkpoint_sha256 FROM runs "
                              "WHERE run_id = ?", [run_id]).fetchone()
        except duckdb.Error as exc:
            raise damage_in(path, exc) or WarehouseQueryError(
                f"reading run {run_id!r} from {path} failed: {exc}") from exc
    return None if row is None else (row[0], row[1], row[2])


def find_finished_grid(path: Path, *, symbol: str, spec_key: str, data_version: str,
                       code_version: str, run_ids: list[str], timeout_s: float = 10.0,
                       ) -> tuple[str, str | None] | None:
    """The latest completed grid of this spec, data and code that holds every one of
    ``run_ids`` with no failure, and its latest report's ``index.html`` (None when it has
    none); None when there is no such grid. A rerun that would train nothing is that grid."""
    if not run_ids or not Path(path).exists():
        return None
    with connect(path, read_only=True, timeout_s=timeout_s) as con:
        row = con.execute(
            """
            SELECT g.grid_id,
                   (SELECT html_path FROM reports r WHERE r.grid_id = g.grid_id
                    ORDER BY built_at DESC LIMIT 1)
            FROM grids g
            WHERE g.symbol = ? AND g.spec_key = ? AND g.data_version = ? AND g.code_version = ?
              AND g.status = 'completed' AND coalesce(g.n_failed, 0) = 0
              AND (SELECT count(*) FROM grid_runs l WHERE l.grid_id = g.grid_id
                   AND list_contains(?, l.run_id)) = ?
            ORDER BY g.started_at DESC, g.grid_id DESC LIMIT 1
            """,
            [symbol, spec_key, data_version, code_version, run_ids, len(set(run_ids))],
        ).fetchone()
    return None if row is None else (row[0], row[1])


# `seqlab train`'s one-config grids: not what `best` means by "the latest grid".
SINGLE_RUN_PRESET = "train"
# A retrain's or backtest's grids of champion configs refitted on prices through a date.
REFIT_PRESET = "refit"
# Grids that are not a study of their own: "the latest grid" leaves them out.
NOT_STUDY_PRESETS = (SINGLE_RUN_PRESET, REFIT_PRESET)


def best_validated_run(path: Path, symbol: str, *, timeout_s: float = 10.0) -> tuple[str, str] | None:
    """(run_id, grid_id) of the run with the lowest validation loss in the latest grid of
    ``symbol`` that has a validated run (one-config grids of ``seqlab train`` left out);
    None when there is none."""
    with connect(path, read_only=True, timeout_s=timeout_s) as con:
        row = con.execute(
            """
            SELECT r.run_id, g.grid_id
            FROM grids g JOIN grid_runs l ON l.grid_id = g.grid_id JOIN runs r ON r.run_id = l.run_id
            WHERE g.symbol = ? AND NOT list_contains(?, coalesce(g.preset, '')) AND r.status = 'ok'
              AND r.selected_on = 'validation' AND r.best_val_loss IS NOT NULL
              AND r.checkpoint_path IS NOT NULL
            ORDER BY g.started_at DESC, g.grid_id DESC, r.best_val_loss ASC, r.run_id LIMIT 1
            """,
            [symbol, list(NOT_STUDY_PRESETS)],
        ).fetchone()
    return None if row is None else (row[0], row[1])


def symbols_with_runs(path: Path, *, timeout_s: float = 10.0) -> list[str]:
    """Symbols that have a validated run ``best_validated_run`` could pick, sorted."""
    if not Path(path).exists():
        return []
    with connect(path, read_only=True, timeout_s=timeout_s) as con:
        rows = con.execute(
            """
            SELECT DISTINCT g.symbol
            FROM grids g JOIN grid_runs l ON l.grid_id = g.grid_id JOIN runs r ON r.run_id = l.run_id
            WHERE coalesce(g.preset, '') <> ? AND r.status = 'ok'
              AND r.selected_on = 'validation' AND r.best_val_loss IS NOT NULL
              AND r.checkpoint_path IS NOT NULL
            ORDER BY g.symbol
            """,
            [SINGLE_RUN_PRESET],
        ).fetchall()
    return [r[0] for r in rows]
