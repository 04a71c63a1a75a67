"""User SQL on the warehouse: read-only and sandboxed by DuckDB itself, limited in time and rows.

The result streams out in Arrow batches, so a query's memory is one batch however many rows
it has; rows past ``max_rows`` are never fetched (for a plain scan, never computed), and a
timer thread interrupts DuckDB when ``timeout_s`` runs out (a 10^10-row cross join would
otherwise run for hours).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from seqlab.warehouse.connection import connect
from seqlab.warehouse.errors import WarehouseError, WarehouseQueryError, WarehouseQueryTimeout
from seqlab.warehouse.integrity import damage_in

# With external access off DuckDB refuses file reads/writes (read_csv, COPY ... TO, glob),
# ATTACH, INSTALL and LOAD; locking the configuration stops a statement switching it back
# (memory_limit included). The read-only connection refuses INSERT/UPDATE/DELETE/CREATE/DROP.
_SANDBOX = ("SET enable_external_access = false", "SET lock_configuration = true")
# DuckDB's own default is 80% of RAM: one query could take it all (a string_agg of 2,000
# 1 MB strings took 4.2 GB). The warehouse's own queries need a few hundred MB at most.
DEFAULT_MEMORY_LIMIT_BYTES = 2 * 2**30


@dataclass(frozen=True)
class QueryLimits:
    """How long and how much one user query may take (``max_rows`` 0: every row)."""

    timeout_s: float = 30.0  # from the first statement to the last row handed out
    max_rows: int = 100_000  # rows handed out; the rest are never fetched
    batch_rows: int = 10_000  # rows per Arrow batch: what is held in memory at once
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES  # DuckDB's memory_limit for it

    def __post_init__(self) -> None:
        # threading.Timer cannot wait past TIMEOUT_MAX (inf raised OverflowError; nan
        # compared false with everything and switched the limit off).
        if not (math.isfinite(self.timeout_s) and 0 < self.timeout_s <= threading.TIMEOUT_MAX):
            raise ValueError(f"--timeout-s must be a finite number of seconds above 0, "
                             f"not {self.timeout_s!r}")
        if self.max_rows < 0 or self.batch_rows < 1:
            raise ValueError(f"query limits cannot be negative: max_rows {self.max_rows}, "
                             f"batch_rows {self.batch_rows} (at least 1)")
        if self.memory_limit_bytes < 1:
            raise ValueError(f"query memory limit must be above 0 bytes, not {self.memory_limit_bytes}")

    @property
    def memory_limit(self) -> str:
        return f"{self.memory_limit_bytes / 2**30:.3g} GiB"


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
        con.execute(f"SET memory_limit = '{int(limits.memory_limit_bytes)}B'")
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
            if isinstance(exc, duckdb.OutOfMemoryException) or "Out of Memory" in str(exc):
                return WarehouseQueryError(
                    f"query on {path} needs more than its memory limit of {limits.memory_limit} "
                    "(--memory-limit or SEQLAB_QUERY_MEMORY_LIMIT); narrow it or allow more"
                )
            return damage_in(path, exc) or WarehouseQueryError(
                f"query refused or failed on {path}: {exc}"
            )

        timer = threading.Timer(limits.timeout_s, interrupt)
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
