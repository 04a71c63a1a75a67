"""Versioned schema migrations, applied in order, each in its own transaction.

To change the schema, append one ``Migration(next_version, "what it does", "SQL;")`` to
``MIGRATIONS``. Never edit a migration that has shipped: files in the wild already ran it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb

from seqlab.schemas.run_tables import RUN_TABLES_SQL
from seqlab.warehouse.clock import utc_now
from seqlab.warehouse.errors import WarehouseSchemaError
from seqlab.warehouse.forecast_tables import FORECASTS_SQL
from seqlab.warehouse.integrity import is_disk_full
from seqlab.warehouse.views import DYNAMICS_V4_SQL, REPORT_TABLES_SQL, SELECTION_V6_SQL


@dataclass(frozen=True)
class Migration:
    """One schema step: ``sql`` may hold several statements separated by ``;``."""

    version: int
    description: str
    sql: str


_PRICE_VALUES = """
    open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE,
    volume DOUBLE, market_cap DOUBLE, volume_base DOUBLE
"""

_V1_CORE_TABLES = f"""
CREATE TABLE prices (
    symbol VARCHAR NOT NULL,
    date DATE NOT NULL,
    {_PRICE_VALUES},
    source VARCHAR NOT NULL,
    ingestion_id VARCHAR NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (symbol, date)
);
-- One row per replaced price row: the values it had, where they came from, and what replaced them.
CREATE TABLE price_history (
    symbol VARCHAR NOT NULL,
    date DATE NOT NULL,
    {_PRICE_VALUES},
    source VARCHAR,
    ingestion_id VARCHAR,
    updated_at TIMESTAMP,
    replaced_at TIMESTAMP NOT NULL,
    replaced_by VARCHAR NOT NULL
);
CREATE TABLE quarantine (
    ingestion_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    line BIGINT,
    raw VARCHAR,
    rule VARCHAR NOT NULL,
    detail VARCHAR,
    quarantined_at TIMESTAMP NOT NULL
);
CREATE TABLE ingestions (
    ingestion_id VARCHAR PRIMARY KEY,
    symbol VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    sha256 VARCHAR NOT NULL,
    layout VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_valid BIGINT NOT NULL,
    rows_quarantined BIGINT NOT NULL,
    rows_inserted BIGINT NOT NULL,
    rows_updated BIGINT NOT NULL,
    rows_unchanged BIGINT NOT NULL,
    data_version VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    seconds DOUBLE NOT NULL
);
-- One row per expectation outcome; validation_id groups the outcomes of one run.
CREATE TABLE validations (
    validation_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    data_version VARCHAR NOT NULL,
    expectation VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    success BOOLEAN NOT NULL,
    observed VARCHAR,
    validated_at TIMESTAMP NOT NULL,
    docs_path VARCHAR
);
-- Current state per symbol, rewritten by every store in the same transaction.
CREATE TABLE datasets (
    symbol VARCHAR PRIMARY KEY,
    data_version VARCHAR NOT NULL,
    rows BIGINT NOT NULL,
    first_date DATE,
    last_date DATE,
    updated_at TIMESTAMP NOT NULL
);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "prices, price_history, quarantine, ingestions, validations, datasets",
        _V1_CORE_TABLES,
    ),
    Migration(2, "grids, grid_runs, runs, epoch_metrics, predictions, features", RUN_TABLES_SQL),
    Migration(3, "reports, claim_results; views leaderboard, convergence, stability, claims", REPORT_TABLES_SQL),
    Migration(4, "runs: selection on validation, splits, feature columns; epoch val_loss; "
                 "claim p-values; level-free dynamics views", DYNAMICS_V4_SQL),
    Migration(5, "runs.checkpoint_sha256: predict refuses a checkpoint that is not the run's",
              "ALTER TABLE runs ADD COLUMN checkpoint_sha256 VARCHAR;"),
    Migration(6, "runs selected before validation marked selected_on='test'; claim_results: "
                 "interval level, claim p, operational test; differenced late wobble",
              SELECTION_V6_SQL),
    Migration(7, "forecasts (the forecast ledger); view forecast_scores", FORECASTS_SQL),
)

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMP NOT NULL,
    description VARCHAR NOT NULL
)
"""


def latest_version(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """The schema version a fully migrated warehouse has."""
    return migrations[-1].version if migrations else 0


def check_sequence(migrations: Sequence[Migration]) -> None:
    """Refuse gaps, repeats or reordering: versions must run 1, 2, 3, ..."""
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise WarehouseSchemaError(f"migration versions must be 1..n in order, got {versions}")


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """Highest applied migration version; 0 for a file that has none."""
    has_table = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_migrations'"
    ).fetchall()[0][0]
    if not has_table:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()[0][0]


def apply_migrations(
    con: duckdb.DuckDBPyConnection, migrations: Sequence[Migration] = MIGRATIONS
) -> list[int]:
    """Apply every migration not yet recorded; return the versions applied now."""
    check_sequence(migrations)
    con.execute(_BOOKKEEPING)
    applied = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    if applied and max(applied) > latest_version(migrations):
        raise WarehouseSchemaError(
            f"warehouse schema version {max(applied)} is newer than this code "
            f"({latest_version(migrations)}); upgrade seqlab"
        )
    done: list[int] = []
    for migration in migrations:
        if migration.version in applied:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(migration.sql)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                [migration.version, utc_now(), migration.description],
            )
            con.execute("COMMIT")
        except duckdb.Error as exc:
            _rollback(con)  # a failed COMMIT (a full disk) has already ended the transaction
            if is_disk_full(exc):
                raise  # connect() names the file and the disk (WarehouseDiskFull)
            raise WarehouseSchemaError(
                f"migration {migration.version} ({migration.description}) failed: {exc}"
            ) from exc
        done.append(migration.version)
    return done


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:  # no transaction left to roll back
        pass

