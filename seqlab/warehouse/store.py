"""Storing one ingested file: upsert prices, keep history, quarantine rejects, all atomically."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from seqlab.schemas.canonical import (
    CANONICAL_COLUMNS,
    CANONICAL_SCHEMA,
    EXTRA_COLUMNS,
    PRICE_COLUMNS,
    REJECT_SCHEMA,
)
from seqlab.warehouse.clock import to_utc_naive, utc_now
from seqlab.warehouse.connection import connect
from seqlab.warehouse.errors import WarehouseStoreError
from seqlab.warehouse.integrity import damage_in
from seqlab.warehouse.versioning import data_version, frame_data_version

_VALUE_COLUMNS = (*PRICE_COLUMNS, *EXTRA_COLUMNS)
_INCOMING = "seqlab_incoming"
_REJECTS = "seqlab_rejects"
_STAGED = "seqlab_staged"


@dataclass(frozen=True)
class IngestRecord:
    """What the caller knows about the ingested file."""

    symbol: str
    source: str
    sha256: str
    layout: str
    rows_read: int
    started_at: datetime


@dataclass(frozen=True)
class StoreResult:
    """What one store changed, and the symbol's data version afterwards."""

    ingestion_id: str
    rows_inserted: int
    rows_updated: int
    rows_unchanged: int
    data_version: str


def new_ingestion_id(started_at: datetime) -> str:
    """Sortable by start time (UTC), unique by its random suffix."""
    return f"{to_utc_naive(started_at):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"


def _lines_hint(rows: pl.DataFrame) -> str:
    if "line" in rows.columns:
        return f" (lines {rows['line'].head(5).to_list()})"
    return ""


def check_store_inputs(
    record: IngestRecord, valid: pl.DataFrame, quarantined: pl.DataFrame
) -> None:
    """Refuse frames the store cannot take whole, before anything is opened or written."""
    for name, frame, needed in (
        ("valid", valid, CANONICAL_COLUMNS),
        ("quarantined", quarantined, tuple(REJECT_SCHEMA)),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(f"{record.source}: {name} frame lacks columns {missing}")
    if record.rows_read != valid.height + quarantined.height:
        raise ValueError(
            f"{record.source}: rows_read={record.rows_read} but {valid.height} valid + "
            f"{quarantined.height} quarantined rows were given; every row read must be one or the other"
        )
    # One cheap pass for the common case; the row-level detail is only worked out on failure.
    foreign, undated, distinct = valid.select(
        foreign=pl.col("symbol").ne_missing(record.symbol).sum(),
        undated=pl.col("date").null_count(),
        distinct=pl.col("date").drop_nulls().n_unique(),
    ).row(0)
    if foreign:
        rows = valid.filter(pl.col("symbol").ne_missing(record.symbol))
        raise ValueError(
            f"{record.source}: {foreign} valid rows are not symbol {record.symbol!r}"
            f"{_lines_hint(rows)}"
        )
    if undated:
        rows = valid.filter(pl.col("date").is_null())
        raise ValueError(f"{record.source}: {undated} valid rows have no date{_lines_hint(rows)}")
    if distinct != valid.height:
        rows = valid.filter(pl.col("date").is_duplicated())
        dates = sorted({d.isoformat() for d in rows["date"].to_list()})[:5]
        raise ValueError(
            f"{record.source}: dates occur more than once among valid rows: {dates}"
            f"{_lines_hint(rows)}"
        )


def _count_stored(con: duckdb.DuckDBPyConnection, symbol: str) -> int:
    return con.execute("SELECT count(*) FROM prices WHERE symbol = ?", [symbol]).fetchall()[0][0]


def _stage_changes(
    con: duckdb.DuckDBPyConnection, symbol: str, valid_rows: int, stored: int
) -> tuple[int, int]:
    """Stage the incoming rows that are new or differ from the stored row; count both kinds."""
    if stored == 0:
        # First load of a symbol: every row is new, so skip the join and the copy.
        con.execute(f"CREATE TEMP VIEW {_STAGED} AS SELECT *, TRUE AS is_new FROM {_INCOMING}")
        return valid_rows, 0
    same = " AND ".join(f"i.{c} IS NOT DISTINCT FROM p.{c}" for c in _VALUE_COLUMNS)
    con.execute(
        f"""
        CREATE TEMP TABLE {_STAGED} AS
        SELECT i.*, p.date IS NULL AS is_new
        FROM {_INCOMING} AS i
        LEFT JOIN (SELECT * FROM prices WHERE symbol = $symbol) AS p ON p.date = i.date
        WHERE p.date IS NULL OR NOT ({same})
        """,
        {"symbol": symbol},
    )
    inserted, updated = con.execute(
        f"SELECT count(*) FILTER (WHERE is_new), count(*) FILTER (WHERE NOT is_new) FROM {_STAGED}"
    ).fetchall()[0]
    return inserted, updated


def _replace_changed(
    con: duckdb.DuckDBPyConnection, record: IngestRecord, ingestion_id: str, now: datetime
) -> None:
    """Copy the stored rows about to change into history, then overwrite them whole."""
    old_values = ", ".join(f"p.{c}" for c in _VALUE_COLUMNS)
    con.execute(
        f"""
        INSERT INTO price_history
        SELECT p.symbol, p.date, {old_values}, p.source, p.ingestion_id, p.updated_at,
               $now, $ingestion_id
        FROM prices AS p JOIN {_STAGED} AS s ON p.symbol = s.symbol AND p.date = s.date
        WHERE NOT s.is_new
        """,
        {"now": now, "ingestion_id": ingestion_id},
    )
    assignments = ", ".join(f"{c} = s.{c}" for c in _VALUE_COLUMNS)
    con.execute(
        f"""
        UPDATE prices SET {assignments},
            source = $source, ingestion_id = $ingestion_id, updated_at = $now
        FROM {_STAGED} AS s
        WHERE NOT s.is_new AND prices.symbol = s.symbol AND prices.date = s.date
        """,
        {"source": record.source, "ingestion_id": ingestion_id, "now": now},
    )


def _insert_new(
    con: duckdb.DuckDBPyConnection, record: IngestRecord, ingestion_id: str, now: datetime
) -> None:
    columns = ", ".join(_VALUE_COLUMNS)
    con.execute(
        f"""
        INSERT INTO prices (symbol, date, {columns}, source, ingestion_id, updated_at)
        SELECT symbol, date, {columns}, $source, $ingestion_id, $now
        FROM {_STAGED} WHERE is_new
        """,
        {"source": record.source, "ingestion_id": ingestion_id, "now": now},
    )


def _quarantine_rejects(
    con: duckdb.DuckDBPyConnection, record: IngestRecord, ingestion_id: str, now: datetime
) -> None:
    con.execute(
        f"""
        INSERT INTO quarantine
        SELECT $ingestion_id, $symbol, $source, $sha256, line, raw, rule, detail, $now
        FROM {_REJECTS}
        """,
        {
            "ingestion_id": ingestion_id,
            "symbol": record.symbol,
            "source": record.source,
            "sha256": record.sha256,
            "now": now,
        },
    )


def _refresh_dataset(
    con: duckdb.DuckDBPyConnection, symbol: str, version: str, now: datetime
) -> None:
    """Rewrite the symbol's current-state row; updated_at moves only when the data did."""
    con.execute(
        """
        INSERT INTO datasets
        SELECT $symbol, $version, count(*), min(date), max(date), $now
        FROM prices WHERE symbol = $symbol
        ON CONFLICT (symbol) DO UPDATE SET
            rows = excluded.rows, first_date = excluded.first_date,
            last_date = excluded.last_date,
            updated_at = CASE WHEN datasets.data_version IS DISTINCT FROM excluded.data_version
                              THEN excluded.updated_at ELSE datasets.updated_at END,
            data_version = excluded.data_version
        """,
        {"symbol": symbol, "version": version, "now": now},
    )


def _record_ingestion(
    con: duckdb.DuckDBPyConnection,
    record: IngestRecord,
    result: StoreResult,
    valid_rows: int,
    quarantined_rows: int,
) -> None:
    started = to_utc_naive(record.started_at)
    finished = utc_now()
    con.execute(
        "INSERT INTO ingestions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            result.ingestion_id, record.symbol, record.source, record.sha256, record.layout,
            record.rows_read, valid_rows, quarantined_rows,
            result.rows_inserted, result.rows_updated, result.rows_unchanged,
            result.data_version, started, finished, (finished - started).total_seconds(),
        ],
    )  # fmt: skip


def _store_in_transaction(
    con: duckdb.DuckDBPyConnection,
    record: IngestRecord,
    incoming: pl.DataFrame,
    quarantined_rows: int,
) -> StoreResult:
    ingestion_id = new_ingestion_id(record.started_at)
    now = utc_now()
    valid_rows = incoming.height
    stored = _count_stored(con, record.symbol)
    inserted, updated = _stage_changes(con, record.symbol, valid_rows, stored)
    if updated:
        _replace_changed(con, record, ingestion_id, now)
    if inserted:
        _insert_new(con, record, ingestion_id, now)
    _quarantine_rejects(con, record, ingestion_id, now)
    # A first load stores exactly the incoming rows: hashing the frame gives the same version
    # as reading the table back, at a fraction of the cost on big files.
    version = frame_data_version(incoming) if stored == 0 else data_version(con, record.symbol)
    _refresh_dataset(con, record.symbol, version, now)
    result = StoreResult(ingestion_id, inserted, updated, valid_rows - inserted - updated, version)
    _record_ingestion(con, record, result, valid_rows, quarantined_rows)
    return result


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    # A failed COMMIT has already ended the transaction; the original error is what matters.
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


def store_ingest(
    path: Path,
    record: IngestRecord,
    valid: pl.DataFrame,
    quarantined: pl.DataFrame,
    *,
    timeout_s: float = 10.0,
) -> StoreResult:
    """Store one ingested file in a single transaction: all of it or, on any error, none.

    Rows of ``valid`` (canonical columns; extra columns are ignored) are upserted by
    (symbol, date): identical rows (all values equal, NULL-safe) are left alone; differing
    rows replace the stored row whole, whose old values go to ``price_history``; new dates
    are inserted. ``quarantined`` rows (REJECT_SCHEMA) are kept with their rule and detail.
    The symbol's data_version and ``datasets`` row are recomputed and an ``ingestions`` row
    is written, all before COMMIT. Input problems raise ``ValueError`` before the warehouse
    is opened; database errors raise ``WarehouseStoreError`` after rollback.
    """
    check_store_inputs(record, valid, quarantined)
    # Casting here (a no-op when dtypes already match) keeps the SQL free of casts.
    incoming = valid.select(CANONICAL_COLUMNS).cast(CANONICAL_SCHEMA)
    rejects = quarantined.select(tuple(REJECT_SCHEMA)).cast(REJECT_SCHEMA).to_arrow()
    with connect(path, timeout_s=timeout_s) as con:
        # Registered frames and temp objects belong to this connection and go when it closes.
        con.register(_INCOMING, incoming.to_arrow())
        con.register(_REJECTS, rejects)
        con.execute("BEGIN TRANSACTION")
        try:
            result = _store_in_transaction(con, record, incoming, quarantined.height)
            con.execute("COMMIT")
        except duckdb.Error as exc:
            _rollback(con)
            raise damage_in(path, exc) or WarehouseStoreError(
                f"storing {record.symbol} from {record.source} into {path} failed and was "
                f"rolled back, nothing was written: {exc}"
            ) from exc
        except BaseException:
            _rollback(con)
            raise
    return result
