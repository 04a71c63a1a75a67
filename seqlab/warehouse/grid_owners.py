"""Which process runs a grid, and grids whose process died before closing them.

A grid is recorded ``running`` when it starts and closed when it ends; a process that dies
in between (SIGKILL, out of memory, a crash) left it ``running`` for ever. While a grid runs,
its free-text ``message`` names the process (pid, host, start time, boot id: no schema
change). When the next grid starts on the warehouse, every ``running`` grid whose process is
gone from this host is marked ``interrupted``. A grid run from another host is left alone:
its process cannot be seen from here.
"""

from __future__ import annotations

import os
import re
import socket

import duckdb

from seqlab.processes import ProcessId

INTERRUPTED = "interrupted"
_OWNER = re.compile(
    r"running in pid (?P<pid>\d+) on host (?P<host>\S+) "
    r"\(process start (?P<started>\d+), boot (?P<boot>[^)]*)\)"
)


def owner_message() -> str:
    """The running grid's message: names this process so a later grid can check on it."""
    me = ProcessId.of(os.getpid())
    return (f"running in pid {me.pid} on host {socket.gethostname()} "
            f"(process start {me.started}, boot {me.boot or 'unknown'})")


def interrupt_abandoned_grids(con: duckdb.DuckDBPyConnection, found_by: str) -> list[str]:
    """Mark ``interrupted`` every running grid whose process on this host is gone; their ids."""
    here = socket.gethostname()
    abandoned = []
    for grid_id, message in con.execute(
        "SELECT grid_id, message FROM grids WHERE status = 'running'"
    ).fetchall():
        owner = _OWNER.search(message or "")
        if owner is None or owner["host"] != here:
            continue  # no owner recorded (an older seqlab), or not checkable from here
        boot = "" if owner["boot"] == "unknown" else owner["boot"]
        if ProcessId(int(owner["pid"]), int(owner["started"]), boot).alive():
            continue
        con.execute(
            "UPDATE grids SET status = ?, message = ? WHERE grid_id = ? AND status = 'running'",
            [INTERRUPTED, f"interrupted: its process (pid {owner['pid']} on host {here}) ended "
             f"before the grid closed; found when grid {found_by} started", grid_id],
        )
        abandoned.append(grid_id)
    return abandoned
