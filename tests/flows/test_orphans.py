"""A killed `seqlab run` leaves no process behind, and its grid does not stay `running`."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqlab.grid import PRESETS
from seqlab.warehouse import WarehouseError, query
from seqlab.warehouse.connection import connect
from seqlab.warehouse.grid_owners import owner_message
from seqlab.warehouse.runs import start_grid

SEQLAB = Path(sys.executable).parent / "seqlab"
_GRID = dict(symbol="ETH", preset="tiny", spec=PRESETS["tiny"].to_dict(), spec_key="k",
             data_version="dv", code_version="c", dispatch="local", n_configs=3)
# A grid started by a process that then exits without closing it, as a killed run would.
_DIES_RUNNING = (
    "import sys\n"
    "from seqlab.grid import PRESETS\n"
    "from seqlab.warehouse.runs import start_grid\n"
    "start_grid(sys.argv[1], grid_id=sys.argv[2], symbol='ETH', preset='tiny',"
    " spec=PRESETS['tiny'].to_dict(), spec_key='k', data_version='dv', code_version='c',"
    " dispatch='local', n_configs=3)\n"
)


def _session(sid: int) -> list[tuple[int, str]]:
    """Live (not zombie) processes of session ``sid``, with their command lines."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != b"Z":
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append((int(entry.name), command.strip()))
        except (OSError, IndexError, ValueError):
            continue  # ended while we looked
    return found


def _wait_for(condition, timeout_s: float, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll_s)
    return condition()


def _running_grid(warehouse: Path) -> str | None:
    if not warehouse.exists():
        return None
    try:
        rows = query(warehouse, "SELECT grid_id FROM grids WHERE status = 'running'", timeout_s=2)
    except WarehouseError:  # the run is writing this moment, or has not created the tables yet
        return None
    return rows["grid_id"][0] if rows.height else None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_kill_9_of_seqlab_run_leaves_no_process_and_the_grid_is_marked_interrupted(tmp_path):
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    for name in ("SEQLAB_WAREHOUSE", "SEQLAB_OUTPUT_DIR", "SEQLAB_DATA_DIR", "PREFECT_API_URL"):
        env.pop(name, None)
    warehouse = tmp_path / "data" / "seqlab.duckdb"
    cli = subprocess.Popen(
        [str(SEQLAB), "run", "--preset", "tiny", "--epochs", "100000"], cwd=tmp_path, env=env,
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        grid_id = _wait_for(lambda: _running_grid(warehouse), timeout_s=300, poll_s=1.0)
        assert grid_id, "the run never got to training"
        before = _session(cli.pid)
        assert any("uvicorn" in command for _, command in before), before  # the server is up
        cli.send_signal(signal.SIGKILL)
        cli.wait(timeout=10)
        gone = _wait_for(lambda: not _session(cli.pid), timeout_s=10, poll_s=0.1)
        assert gone, f"still running 10 s after the CLI was killed: {_session(cli.pid)}"
    finally:
        for pid, _ in _session(cli.pid):  # whatever is left, so no test leaves an orphan
            os.kill(pid, signal.SIGKILL)
        if cli.poll() is None:
            cli.kill()
            cli.wait()

    assert start_grid(warehouse, grid_id="next", **_GRID) == [grid_id]
    grids = dict(query(warehouse, "SELECT grid_id, status FROM grids").rows())
    assert grids == {grid_id: "interrupted", "next": "running"}
    message = query(warehouse, f"SELECT message FROM grids WHERE grid_id = '{grid_id}'")["message"][0]
    assert message.startswith(f"interrupted: its process (pid {cli.pid} on host ")


def test_only_grids_whose_process_is_gone_are_marked_interrupted(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    start_grid(warehouse, grid_id="alive", **_GRID)  # this very process: still running
    died = subprocess.run([sys.executable, "-c", _DIES_RUNNING, str(warehouse), "died"],
                          capture_output=True, text=True, timeout=120)
    assert died.returncode == 0, died.stderr
    mine = owner_message()
    copies = {
        "other-host": mine.replace(f"on host {socket.gethostname()} ", "on host elsewhere "),
        "reused-pid": re.sub(r"process start \d+", "process start 1", mine),
        "no-owner": None,  # recorded by an older seqlab: nothing to check
    }
    with connect(warehouse) as con:
        for grid_id, message in copies.items():
            con.execute("CREATE OR REPLACE TEMP TABLE copy AS SELECT * FROM grids WHERE grid_id = 'alive'")
            con.execute("UPDATE copy SET grid_id = ?, message = ?", [grid_id, message])
            con.execute("INSERT INTO grids SELECT * FROM copy")

    assert sorted(start_grid(warehouse, grid_id="next", **_GRID)) == ["died", "reused-pid"]
    statuses = dict(query(warehouse, "SELECT grid_id, status FROM grids").rows())
    assert statuses == {"died": "interrupted", "reused-pid": "interrupted", "alive": "running",
                        "other-host": "running", "no-owner": "running", "next": "running"}
    assert start_grid(warehouse, grid_id="again", **_GRID) == []  # marked once
