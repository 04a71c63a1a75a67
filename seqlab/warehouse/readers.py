"""Read-only views of the warehouse as polars frames."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from seqlab.schemas.canonical import CANONICAL_COLUMNS, CANONICAL_SCHEMA
from seqlab.warehouse.connection import connect
from seqlab.warehouse.errors import WarehouseQueryError
from seqlab.warehouse.integrity import damage_in


def query(path: Path, sql: str, *, timeout_s: float = 10.0) -> pl.DataFrame:
    """Run one SQL statement on a read-only connection and return its result.

    Read-only is the only guard here: writes are refused by DuckDB. Errors in the SQL raise
    ``WarehouseQueryError`` naming the file. Statements without a result set give an
    empty frame.
    """
    with connect(path, read_only=True, timeout_s=timeout_s) as con:
        try:
            relation = con.sql(sql)
            return pl.DataFrame() if relation is None else relation.pl()
        except duckdb.Error as exc:
            raise damage_in(path, exc) or WarehouseQueryError(f"query on {path} failed: {exc}") from exc


def load_prices(
    path: Path,
    symbol: str,
    *,
    start: date | None = None,
    end: date | None = None,
    timeout_s: float = 10.0,
) -> pl.DataFrame:
    """The symbol's stored prices with CANONICAL_SCHEMA, ascending by date.

    ``start`` and ``end`` are inclusive; either may be left open.
    """
    with connect(path, read_only=True, timeout_s=timeout_s) as con:
        return read_prices(con, symbol, start=start, end=end)


def read_prices(
    con: duckdb.DuckDBPyConnection, symbol: str, *, start: date | None = None,
    end: date | None = None,
) -> pl.DataFrame:
    """``load_prices`` on a connection the caller already holds."""
    columns = ", ".join(CANONICAL_COLUMNS)
    frame = con.sql(
        f"""
        SELECT {columns} FROM prices
        WHERE symbol = $symbol
          AND ($start IS NULL OR date >= $start)
          AND ($end IS NULL OR date <= $end)
        ORDER BY date
        """,
        params={"symbol": symbol, "start": start, "end": end},
    ).pl()
    return frame.cast(CANONICAL_SCHEMA)


def current_data_version(path: Path, symbol: str, *, timeout_s: float = 10.0) -> str | None:
    """The symbol's data_version as of its last store; None if it was never stored."""
    with connect(path, read_only=True, timeout_s=timeout_s) as con:
        rows = con.execute(
            "SELECT data_version FROM datasets WHERE symbol = ?", [symbol]
        ).fetchall()
    return rows[0][0] if rows else None


def load_quarantine(
    path: Path, ingestion_id: str | None = None, *, timeout_s: float = 10.0
) -> pl.DataFrame:
    """Quarantined rows (of one ingestion, or all), in ingestion then line order."""
    with connect(path, read_only=True, timeout_s=timeout_s) as con:
        return con.sql(
            """
            SELECT * FROM quarantine
            WHERE $ingestion_id IS NULL OR ingestion_id = $ingestion_id
            ORDER BY quarantined_at, ingestion_id, line
            """,
            params={"ingestion_id": ingestion_id},
        ).pl()


def load_ingestions(path: Path, *, timeout_s: float = 10.0) -> pl.DataFrame:
    """Every ingestion recorded, oldest first."""
    with connect(path, read_only=True, timeout_s=timeout_s) as con:
        return con.sql("SELECT * FROM ingestions ORDER BY started_at, ingestion_id").pl()


def load_price_history(path: Path, symbol: str, *, timeout_s: float = 10.0) -> pl.DataFrame:
    """Replaced price rows of the symbol, by date then replacement time."""
    with connect(path, read_only=True, timeout_s=timeout_s) as con:
        return con.sql(
            "SELECT * FROM price_history WHERE symbol = $symbol ORDER BY date, replaced_at",
            params={"symbol": symbol},
        ).pl()
