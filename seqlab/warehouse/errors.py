"""Errors the warehouse raises; each names the warehouse file it is about."""

from __future__ import annotations

from pathlib import Path


class WarehouseError(Exception):
    """Base class for warehouse failures."""


class WarehouseMissing(WarehouseError, FileNotFoundError):
    """A read-only open found no warehouse file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        super().__init__(
            f"warehouse {self.path} does not exist; ingest data first (reads never create it)"
        )

    def __reduce__(self):
        return (type(self), (self.path,))


class WarehouseLocked(WarehouseError, TimeoutError):
    """Another connection holds the warehouse file lock and did not let go in time."""

    def __init__(
        self,
        path: Path,
        holder_pid: int | None,
        holder_exe: str | None = None,
        waited_s: float = 0.0,
    ) -> None:
        self.path = Path(path)
        self.holder_pid = holder_pid
        self.holder_exe = holder_exe
        self.waited_s = waited_s
        if holder_pid is None:
            holder = "another process (holder unknown)"
        else:
            holder = f"{holder_exe or 'process'} (PID {holder_pid})"
        super().__init__(
            f"warehouse {self.path} is locked by {holder}; gave up after {waited_s:.1f}s. "
            "Wait for that process to finish or stop it, then retry."
        )

    def __reduce__(self):
        # Keeps the exception picklable across process boundaries (task runners do that).
        return (type(self), (self.path, self.holder_pid, self.holder_exe, self.waited_s))


class WarehouseUnreadable(WarehouseError):
    """The path cannot be opened as a warehouse: a directory, not a DuckDB file, no access."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(self._message())

    def _message(self) -> str:
        return f"warehouse {self.path} {self.problem}"

    def __reduce__(self):
        return (type(self), (self.path, self.problem))


class WarehouseDamaged(WarehouseUnreadable):
    """A DuckDB file whose blocks fail their checksums or are missing (truncated), or whose
    write-ahead log cannot be replayed."""

    def _message(self) -> str:
        return (
            f"warehouse {self.path} is damaged: {self.problem}. Restore it from a copy, or "
            "move it aside and ingest again into a new file"
        )


class WarehouseDiskFull(WarehouseError):
    """The disk holding the warehouse has no room: the transaction was rolled back."""

    def __init__(self, path: Path, disk: str | None = None) -> None:
        self.path = Path(path)
        self.disk = disk if disk is not None else _describe_disk(self.path)
        super().__init__(
            f"the disk holding warehouse {self.path} is full ({self.disk}); the write that "
            "needed room was rolled back whole: free space there, or give --warehouse on "
            "another disk, and run again"
        )

    def __reduce__(self):
        return (type(self), (self.path, self.disk))


def _describe_disk(path: Path) -> str:
    """The mount point holding ``path`` and its free space, e.g. ``/data: 12 KiB free of 6 MiB``."""
    import shutil

    mount = path.parent.resolve()
    while not mount.is_mount() and mount != mount.parent:
        mount = mount.parent
    try:
        usage = shutil.disk_usage(mount)
    except OSError:
        return f"{mount}"
    return f"{mount}: {_size(usage.free)} free of {_size(usage.total)}"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n} B"


class WarehouseSchemaError(WarehouseError):
    """The file's schema version does not match what this code expects."""


class WarehouseSchemaOutdated(WarehouseSchemaError):
    """The file is at an older schema version; any writable open migrates it."""


class WarehouseQueryError(WarehouseError):
    """An ad-hoc query was refused or failed (bad SQL, or a write on a read-only open)."""


class WarehouseQueryTimeout(WarehouseQueryError):
    """An ad-hoc query ran past its time limit and was interrupted."""


class WarehouseStoreError(WarehouseError):
    """A store transaction failed inside the database and was rolled back."""
