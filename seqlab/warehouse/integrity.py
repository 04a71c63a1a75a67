"""Is this path a whole DuckDB warehouse? Checks before DuckDB opens it and right after.

DuckDB stores a checksum in every block and verifies a block when it reads it, but a query
reads only the blocks it needs: on a copy cut to half its size, ``select count(*) from
prices`` answers from metadata that survived and returns a number. Reads that hand data to a
person (``seqlab query``, a report) therefore verify the file first: every block's checksum,
then a scan of every column of every table, so damage anywhere is an error and never a
quietly wrong answer. Measured on the CoinCodex warehouse (3,654 prices, 2.6 MB): 5-15 ms for
the checksums, 25 ms for the scan; 35 ms for the scan of a 15 MB file with 380k epoch rows.

The checksums are read through DuckDB's own descriptor of the file, never a handle of our
own. DuckDB's cross-process lock is a POSIX record lock (fcntl), and POSIX drops every such
lock a process holds on a file as soon as the process closes *any* descriptor of that file.
Opening and closing the file here used to drop the reader's shared lock mid-read: the grid's
writer then got in, checkpointed and trimmed the file under the reader, and the reader's next
block read found a block that was rewritten or gone and called a healthy file damaged (or
read a torn state). ``tests/warehouse/test_warehouse_damage.py`` holds the regression test.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import duckdb
import numpy as np

from seqlab.warehouse.errors import (
    WarehouseDamaged,
    WarehouseDiskFull,
    WarehouseError,
    WarehouseUnreadable,
)

# DuckDB's file layout (storage versions of DuckDB 1.x-2.x): three 4 KiB headers, then
# fixed-size blocks, each starting with a little-endian uint64 checksum of the rest of the
# block: 5381 XOR the product of every 8-byte word with this multiplier (checksum.cpp).
_FILE_HEADER_BYTES = 3 * 4096
_CHECKSUM_SEED = np.uint64(5381)
_CHECKSUM_MULTIPLIER = np.uint64(0xBF58476D1CE4E5B9)
_CHUNK_BLOCKS = 16  # 4 MiB per read at DuckDB's 256 KiB blocks: memory stays flat
# Words in DuckDB errors that mean the file itself is bad, not the statement.
_DAMAGE_MARKERS = (
    "Corrupt database file",
    "does not match stored checksum",
    "Could not read enough bytes",
    "No more data remaining in MetadataReader",
    "Failure while replaying WAL",
)
_NOT_DUCKDB = "not a valid DuckDB database file"
# A write that found no room (ENOSPC, EDQUOT): DuckDB words it inside longer messages.
_DISK_FULL_MARKERS = ("No space left on device", "Disk quota exceeded", "not enough space")


def check_path(path: Path) -> None:
    """Refuse, before DuckDB sees it, a path that cannot be a warehouse."""
    if path.is_dir():
        raise WarehouseUnreadable(path, "is a directory, not a DuckDB database file")
    if path.is_file() and path.stat().st_size == 0:
        raise WarehouseUnreadable(
            path, "is an empty file (0 bytes), not a DuckDB database; remove it to start anew"
        )


def open_failure(path: Path, exc: duckdb.Error) -> WarehouseError:
    """The warehouse error for a DuckDB failure to open ``path`` that is not a lock."""
    text = _first_line(exc)
    if _NOT_DUCKDB in text:
        return WarehouseUnreadable(
            path, f"is not a DuckDB database file (it begins {_first_bytes(path)!r})"
        )
    if "Permission denied" in text:
        return WarehouseUnreadable(path, "cannot be read: permission denied")
    return damage_in(path, exc) or WarehouseUnreadable(path, f"cannot be opened: {text}")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says a write found no room on the disk."""
    return any(marker in str(exc) for marker in _DISK_FULL_MARKERS)


def damage_in(path: Path, exc: BaseException) -> WarehouseDamaged | WarehouseDiskFull | None:
    """A WarehouseDamaged if ``exc`` (raised while reading or writing) says the file is bad;
    a WarehouseDiskFull if the disk had no room for a write (DuckDB rolled it back)."""
    if is_disk_full(exc):
        return WarehouseDiskFull(path)
    text = _first_line(exc)
    if any(marker in text for marker in _DAMAGE_MARKERS):
        return WarehouseDamaged(path, text)
    return None


def verify_warehouse(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Raise WarehouseDamaged unless every block and every table of the open file reads back."""
    _verify_blocks(con, path)
    _scan_tables(con, path)


def _verify_blocks(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    block_size, total = con.execute(
        "SELECT block_size, total_blocks FROM pragma_database_size() "
        "WHERE database_name = current_database()"
    ).fetchone()
    metadata = {row[0] for row in con.execute("SELECT block_id FROM pragma_metadata_info()").fetchall()}
    descriptor = _duckdb_descriptor(path)
    if descriptor is None:
        # No way to read the blocks without risking the lock (module docstring); DuckDB's
        # own checks and the table scan remain.
        return
    size = os.fstat(descriptor).st_size
    # DuckDB trims free blocks off the end, so a file may hold fewer than total_blocks.
    in_file = max(0, min(total, (size - _FILE_HEADER_BYTES) // block_size))
    bad = _bad_blocks(descriptor, block_size, in_file)
    if metadata and metadata <= set(bad):
        # DuckDB just read these blocks to open the file, so they are sound: this file's
        # block format is not the one above (a newer DuckDB). Its own checks, the scan, remain.
        return
    if bad:
        where = _FILE_HEADER_BYTES + bad[0] * block_size
        raise WarehouseDamaged(
            path, f"the checksums of {len(bad)} of its {in_file} blocks do not match (the first "
            f"at byte {where:,})"
        )
    # Bytes past the header's last block are an unfinished checkpoint (a full disk stops
    # one mid-block; the committed data is in the WAL and the header still points before
    # it): not damage. Only a file shorter than its blocks, or metadata past its end, is.
    cut_short = size < _FILE_HEADER_BYTES + total * block_size and (
        (size - _FILE_HEADER_BYTES) % block_size)
    if cut_short or any(block >= in_file for block in metadata):
        raise WarehouseDamaged(path, f"it ends partway ({size:,} bytes): the file was cut short")


def _duckdb_descriptor(path: Path) -> int | None:
    """The descriptor through which this process's open DuckDB database reads ``path``.

    Reading through it (``os.pread``, which neither moves its offset nor closes it) keeps
    DuckDB's lock whole; see the module docstring. None where open descriptors cannot be
    listed (Linux lists them in /proc/self/fd, macOS in /dev/fd).
    """
    target = os.stat(path)
    for listing in ("/proc/self/fd", "/dev/fd"):
        try:
            names = os.listdir(listing)
        except OSError:
            continue
        for name in names:
            try:
                found = os.fstat(int(name))
            except (OSError, ValueError):  # the listing's own descriptor, closed since
                continue
            if stat.S_ISREG(found.st_mode) and (found.st_dev, found.st_ino) == (
                target.st_dev, target.st_ino
            ):
                return int(name)
    return None


def _bad_blocks(descriptor: int, block_size: int, count: int) -> list[int]:
    """Indexes of the first ``count`` blocks whose stored checksum does not match their bytes."""
    words = block_size // 8
    bad: list[int] = []
    for first in range(0, count, _CHUNK_BLOCKS):
        n = min(_CHUNK_BLOCKS, count - first)
        data = os.pread(descriptor, n * block_size, _FILE_HEADER_BYTES + first * block_size)
        n = len(data) // block_size  # the file ended sooner: the caller reports a short file
        if n == 0:
            break
        blocks = np.frombuffer(data[: n * block_size], dtype="<u8").reshape(n, words)
        # (n, words) -> (n,): uint64 products wrap around, as in DuckDB's C++.
        computed = np.bitwise_xor.reduce(blocks[:, 1:] * _CHECKSUM_MULTIPLIER, axis=1)
        mismatched = np.nonzero((computed ^ _CHECKSUM_SEED) != blocks[:, 0])[0]
        bad.extend(int(first + i) for i in mismatched)
    return bad


def _scan_tables(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Read every column of every table: DuckDB verifies each block it reads."""
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()"
    ).fetchall()
    for schema, table in tables:
        try:
            con.execute(f'SELECT count(*), sum(hash(COLUMNS(*))) FROM "{schema}"."{table}"').fetchall()
        except duckdb.Error as exc:
            raise WarehouseDamaged(path, f"table {table} cannot be read ({_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _first_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(16)
    except OSError:
        return b""
