"""One process, named for good: its pid plus its start time and the machine's boot id.

A pid alone is reused once its process ends; with the start time (Linux ``/proc``) and the
boot id, a recorded process is never mistaken for a later one that got the same number.
Standard library only: the ephemeral server's watchdog imports this and nothing heavier.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class ProcessId:
    """A process as it can be recognised later; 0 and "" mean "unknown here" (not Linux)."""

    pid: int
    started: int = 0  # clock ticks after boot: /proc/<pid>/stat field 22
    boot: str = ""  # the kernel's boot id when the process was seen

    @classmethod
    def of(cls, pid: int) -> ProcessId:
        fields = _stat_fields(pid)
        return cls(pid, int(fields[19]) if len(fields) > 19 else 0, boot_id())

    def alive(self) -> bool:
        """Whether this very process still runs (a zombie does not count)."""
        if self.boot and self.boot != boot_id():
            return False  # the machine has restarted since
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # someone else's process, but it exists
        fields = _stat_fields(self.pid)
        if not fields:  # no /proc: the pid exists, and that is all that can be told
            return True
        return fields[0] != b"Z" and (not self.started or int(fields[19]) == self.started)


def boot_id() -> str:
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


def _stat_fields(pid: int) -> list[bytes]:
    """/proc/<pid>/stat from field 3 (the state) on; [] where there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            # The command name (field 2) may hold spaces: split after its closing ')'.
            return handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return []
