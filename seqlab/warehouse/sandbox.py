"""User SQL on the warehouse: read-only and sandboxed by DuckDB itself, limited in time and rows.

The result streams out in Arrow batches, so a query's memory is one batch however many rows
it has; rows past ``max_rows`` are never fetched (for a plain scan, never computed), and a
timer thread interrupts DuckDB when ``timeout_s`` runs out (a 10^10-row cross join would
otherwise run for hours).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from seqlab.warehouse.connection import connect
from seqlab.warehouse.errors import WarehouseError, WarehouseQueryError, WarehouseQueryTimeout
from seqlab.warehouse.integrity import damage_in

# With external access off DuckDB refuses file reads/writes (read_csv, COPY ... TO, glob),
# ATTACH, INSTALL and LOAD; locking the configuration stops a statement switching it back.
# The read-only connection refuses INSERT/UPDATE/DELETE/CREATE/DROP on the warehouse.
_SANDBOX = ("SET enable_external_access = false", "SET lock_configuration = true")


@dataclass(frozen=True)
class QueryLimits:
    """How long and how much one user query may take; 0 turns a limit off."""

    timeout_s: float = 30.0  # from the first statement to the last row handed out
    max_rows: int = 100_000  # rows handed out; the rest are never fetched
    batch_rows: int = 10_000  # rows per Arrow batch: what is held in memory at once

    def __post_init__(self) -> None:
        if self.timeout_s < 0 or self.max_rows < 0 or self.batch_rows < 1:
            raise ValueError(
                f"query limits cannot be negative: timeout_s {self.timeout_s:g}, max_rows "
                f"{self.max_rows}, batch_rows {self.batch_rows} (at least 1)"
            )


@dataclass
class QueryStream:
    """An open query's columns and its batches; ``cut`` is set once rows were left out."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    rows: int = 0
    cut: bool = False


@contextmanager
def open_user_query(
    path: Path, sql: str, *, limits: QueryLimits = QueryLimits(), lock_timeout_s: float = 10.0
) -> Iterator[QueryStream]:
    """Run SQL typed by a user; iterate the stream's batches inside the ``with`` block.

    Anything that writes or touches other files is refused (WarehouseQueryError naming the
    file), a query past ``timeout_s`` raises WarehouseQueryTimeout, and the file is verified
    whole before the query runs (WarehouseDamaged otherwise).
    """
    with connect(path, read_only=True, timeout_s=lock_timeout_s, verify=True) as con:
        for statement in _SANDBOX:
            con.execute(statement)
        expired = threading.Event()

        def interrupt() -> None:
            expired.set()
            try:
                con.interrupt()
            except duckdb.Error:  # the query ended and the connection closed meanwhile
                pass

        def failure(exc: Exception) -> WarehouseError:
            if expired.is_set():
                return WarehouseQueryTimeout(
                    f"query on {path} stopped after its time limit of {limits.timeout_s:g} s "
                    "(--timeout-s); narrow it (a WHERE, a LIMIT) or allow more time"
                )
            return damage_in(path, exc) or WarehouseQueryError(
                f"query refused or failed on {path}: {exc}"
            )

        timer = threading.Timer(limits.timeout_s, interrupt) if limits.timeout_s else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            relation = con.sql(sql)
            if relation is None:  # a statement without a result set
                yield QueryStream(pa.schema([]), iter(()))
                return
            reader = relation.to_arrow_reader(limits.batch_rows)
            stream = QueryStream(reader.schema, iter(()))
            stream.batches = _limited(reader, limits.max_rows, stream, failure)
            yield stream
        except duckdb.Error as exc:
            raise failure(exc) from exc
        finally:
            if timer is not None:
                timer.cancel()


def _limited(
    reader: pa.RecordBatchReader, max_rows: int, stream: QueryStream,
    failure: Callable[[Exception], WarehouseError],
) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except OSError as exc:  # DuckDB's errors mid-stream arrive through Arrow as OSError
            raise failure(exc) from exc
        if batch.num_rows == 0:
            continue
        room = max_rows - stream.rows if max_rows else batch.num_rows
        if batch.num_rows > room:
            stream.cut = True  # more rows than the cap: stop fetching, DuckDB stops computing
            if room > 0:
                stream.rows += room
                yield batch.slice(0, room)
            return
        stream.rows += batch.num_rows
        yield batch


def run_user_query(
    path: Path, sql: str, *, timeout_s: float = 10.0, limits: QueryLimits = QueryLimits()
) -> pl.DataFrame:
    """The whole (capped) result of user SQL as one frame; ``timeout_s`` bounds the lock wait."""
    with open_user_query(path, sql, limits=limits, lock_timeout_s=timeout_s) as stream:
        batches = list(stream.batches)
        return pl.from_arrow(pa.Table.from_batches(batches, schema=stream.schema))
