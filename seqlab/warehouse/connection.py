"""Opening the warehouse: lock waits with backoff, migrations on writable opens."""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from seqlab.warehouse.errors import (
    WarehouseDiskFull,
    WarehouseError,
    WarehouseLocked,
    WarehouseMissing,
    WarehouseSchemaError,
    WarehouseSchemaOutdated,
)
from seqlab.warehouse.integrity import check_path, damage_in, open_failure, verify_warehouse
from seqlab.warehouse.migrations import apply_migrations, latest_version, schema_version

# DuckDB (1.x-2.x) words a cross-process lock conflict like:
#   IO Error: Could not set lock on file "x.duckdb": Conflicting lock is held in
#   /usr/bin/python3.11 (PID 1234). See also https://duckdb.org/...
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")
_LOCK_FAILURE = "Could not set lock on file"
# Inside one process DuckDB shares one database instance per file; a second open with a
# different read_only setting is refused until the first closes, which is a lock in effect.
_SAME_PROCESS_CONFLICT = "different configuration than existing connections"

# Files this process verified whole (or wrote since), by (device, inode, size, mtime): every
# command checks a file the same way before its first read or write, and a process that
# opens it again (a grid stores each pack) does not pay for it again unless another process
# changed it meanwhile. Costs 30-60 ms on the study's warehouses (seqlab.warehouse.integrity).
_VERIFIED: set[tuple[int, int, int, int]] = set()

_FIRST_BACKOFF_S = 0.05
# Short, jittered waits: a grid's writer holds the file for well under a second per store,
# and a reader polling at a fixed long interval can keep missing those gaps.
_MAX_BACKOFF_S = 0.25


@dataclass(frozen=True)
class LockHolder:
    """Who holds the file, as far as DuckDB's error says."""

    pid: int | None
    exe: str | None


def parse_lock_holder(message: str) -> LockHolder | None:
    """The lock holder named in a DuckDB error message; None if it is not a lock error."""
    match = _LOCK_HOLDER.search(message)
    if match:
        return LockHolder(int(match["pid"]), match["exe"])
    if _SAME_PROCESS_CONFLICT in message:
        return LockHolder(os.getpid(), "this process (another connection)")
    if _LOCK_FAILURE in message:
        return LockHolder(None, None)
    return None


def _open_with_retry(path: Path, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    started = time.monotonic()
    delay = _FIRST_BACKOFF_S
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:  # a bad checksum is a bare duckdb.Error, not an IOException
            holder = parse_lock_holder(str(exc))
            if holder is None:
                raise open_failure(path, exc) from exc
            waited = time.monotonic() - started
            if waited >= timeout_s:
                raise WarehouseLocked(path, holder.pid, holder.exe, waited) from exc
            time.sleep(min(delay * random.uniform(0.5, 1.0), timeout_s - waited))
            delay = min(delay * 2, _MAX_BACKOFF_S)


def _check_readable_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    found, expected = schema_version(con), latest_version()
    if found < expected:
        raise WarehouseSchemaOutdated(
            f"warehouse {path} is at schema version {found}, this code needs {expected}; "
            "any write (e.g. an ingest) migrates it"
        )
    if found > expected:
        raise WarehouseSchemaError(
            f"warehouse {path} is at schema version {found}, newer than this code ({expected}); "
            "upgrade seqlab"
        )


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)


@contextmanager
def connect(
    path: Path, *, read_only: bool = False, timeout_s: float = 10.0, verify: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse at ``path`` for the duration of a ``with`` block.

    Writable opens create parent folders and bring the schema up to date. When another
    process holds the file, waits with exponential backoff up to ``timeout_s`` and then raises
    ``WarehouseLocked`` naming the file and the holder's PID. Read-only opens of a missing
    file raise ``WarehouseMissing`` (they never create one). Any other failure to open, and
    a damaged block met inside the block, raise ``WarehouseUnreadable``/``WarehouseDamaged``
    naming the file. Every open checks every block and table (``seqlab.warehouse.integrity``)
    before migrations or the block run, once per process and file version; ``verify`` checks
    again even so (what a person reads: a query, a report). A write that finds the disk full
    raises ``WarehouseDiskFull`` naming the disk. The connection is closed on exit, which
    rolls back any transaction the block left open.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise WarehouseMissing(path)
    check_path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    created = not read_only and not path.exists()
    try:
        con = _open_with_retry(path, read_only, timeout_s)
    except WarehouseError as exc:
        _remove_unfinished(path, created, exc)
        raise
    trusted = False
    try:
        # Long statements would otherwise draw a progress bar on the terminal of a pipeline.
        con.execute("SET enable_progress_bar = false")
        if verify or _signature(path) not in _VERIFIED:
            verify_warehouse(con, path)  # before a migration or a store writes into it
        trusted = True
        if read_only:
            _check_readable_schema(con, path)
        else:
            apply_migrations(con)
        yield con
    except duckdb.Error as exc:
        damaged = damage_in(path, exc)
        if damaged is None:
            raise
        con.close()
        _remove_unfinished(path, created, damaged)
        raise damaged from exc
    finally:
        con.close()
        signature = _signature(path)
        if trusted and signature is not None:
            _VERIFIED.add(signature)  # its own writes do not make it unverified


def _remove_unfinished(path: Path, created: bool, exc: Exception) -> None:
    """A warehouse this open was creating when the disk filled up is removed (with its
    WAL): half a header or half the migrations is no warehouse, and the next command would
    call it damaged. An existing file is never removed."""
    if created and isinstance(exc, WarehouseDiskFull):
        for leftover in (path, path.with_name(path.name + ".wal")):
            leftover.unlink(missing_ok=True)


@contextmanager
def connect_reader(
    path: Path, *, timeout_s: float = 10.0, verify: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only open (readers never block one another); a file at an older schema is
    opened writable instead, once, so its migrations run before it is read."""
    with ExitStack() as stack:
        try:
            con = stack.enter_context(
                connect(path, read_only=True, timeout_s=timeout_s, verify=verify)
            )
        except WarehouseSchemaOutdated:
            con = stack.enter_context(connect(path, timeout_s=timeout_s, verify=verify))
        yield con
