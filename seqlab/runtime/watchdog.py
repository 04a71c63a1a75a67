"""The ephemeral Prefect server of a CLI run, which ends with the CLI however the CLI ends.

Prefect starts its ephemeral API server (uvicorn, ~230 MB) as a plain child process and
stops it from an ``atexit`` hook, so a ``seqlab run`` killed with SIGKILL left the server
running under PID 1 (19 minutes until someone noticed). The kernel's parent-death signal
does not fit: Prefect's Popen takes no hook, and the signal follows the *thread* that
spawned the child, which may be any of Prefect's worker threads. So the CLI starts that same
server itself, in its main thread (Prefect's clients then reuse it, as they reuse the one
``prefect_test_harness`` starts), and hands it to a watchdog: a small child process that
blocks on a pipe only the CLI holds. However the CLI ends, the kernel closes the pipe, and the
watchdog stops the server (SIGTERM, SIGKILL after 5 s) unless it is already gone. Measured:
the server of a CLI killed with SIGKILL is gone within a second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from seqlab.processes import ProcessId

_GRACE_S = 5.0
_POLL_S = 0.05


class Watchdog:
    """A child process that ends the processes handed to it when this process ends.

    It blocks reading a pipe only this process holds: each line names a process to guard,
    and end-of-file (this process exited or was killed) is the signal to stop them all.
    """

    def __init__(self) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-m", "seqlab.runtime.watchdog"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def guard(self, pid: int) -> None:
        target = ProcessId.of(pid)
        self._child.stdin.write(f"{target.pid} {target.started} {target.boot}\n".encode())
        self._child.stdin.flush()


# Kept for the life of the CLI: the watchdog acts when its pipe closes.
_watchdogs: list[Watchdog] = []


def start_watched_server() -> str | None:
    """Start Prefect's ephemeral server now, guarded by a watchdog; its API URL, or None when
    ``PREFECT_API_URL`` names a server already (nothing to start or stop then)."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return None
    watchdog = Watchdog()
    _watchdogs.append(watchdog)
    server = SubprocessASGIServer()  # the port-less instance every Prefect client looks up
    # start() spawns uvicorn, then waits up to minutes for it to answer (and respawns it on
    # another port if the first was taken): each process it spawns is guarded the moment it
    # exists, so a CLI killed during that wait leaves nothing behind either.
    started = threading.Event()
    spotter = threading.Thread(target=_guard_spawned, args=(server, watchdog, started),
                               daemon=True)
    spotter.start()
    try:
        server.start()
    finally:
        started.set()
        spotter.join()
    return server.api_url


def _guard_spawned(server, watchdog: Watchdog, started: threading.Event) -> None:
    seen = None
    while True:
        last_look = started.is_set()  # read before looking, so the last spawn is not missed
        process = server.server_process
        if process is not None and process.pid != seen:
            watchdog.guard(process.pid)
            seen = process.pid
        if last_look:
            return
        time.sleep(_POLL_S)


def _stop(target: ProcessId) -> None:
    """SIGTERM, then SIGKILL after the grace period, unless it is gone already."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not target.alive():
            return
        os.kill(target.pid, sig)
        deadline = time.monotonic() + _GRACE_S
        while time.monotonic() < deadline and target.alive():
            time.sleep(0.1)


def main() -> None:
    """The watchdog: collect processes from the pipe until it closes, then stop them."""
    # Ctrl-C reaches the whole foreground group: the watchdog must outlive the CLI to act.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    targets = []
    for line in sys.stdin.buffer:  # ends once the CLI has exited or been killed
        pid, started, *boot = line.decode().split()
        targets.append(ProcessId(int(pid), int(started), boot[0] if boot else ""))
    for target in targets:
        try:
            _stop(target)
        except ProcessLookupError:  # it ended between the check and the signal
            pass


if __name__ == "__main__":
    main()
