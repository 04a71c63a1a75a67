"""A full disk is one line naming the disk: nothing half-stored, the grid marked failed, and
no false "damaged" alarm afterwards (issue 23, item 4). On a real, small tmpfs."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqlab.cli import app
from seqlab.warehouse import query
from tests.conftest import COINCODEX

DISK_BYTES = 6 * 2**20


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 6 MiB tmpfs of its own (root can mount one; elsewhere the test is skipped)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({(done.stderr or done.stdout).strip()}): "
                    "the full-disk tests need root or CAP_SYS_ADMIN")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path, leave_bytes: int) -> Path:
    """Fill ``disk`` until ``leave_bytes`` are free."""
    filler = disk / f"filler-{uuid.uuid4().hex[:6]}"
    free = shutil.disk_usage(disk).free
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, free - leave_bytes))
    return filler


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def ingest(warehouse: Path, out: Path):
    return cli("ingest", str(COINCODEX), "--warehouse", str(warehouse), "--out", str(out))


def full_disk_line(warehouse: Path, disk: Path) -> str:
    return f"error: the disk holding warehouse {warehouse} is full ({disk}: "


@pytest.mark.parametrize("room_kib", [8, 40, 300])
def test_ingesting_into_a_new_warehouse_on_a_full_disk_is_one_line(small_disk, tmp_path, room_kib):
    warehouse = small_disk / "w.duckdb"
    fill(small_disk, room_kib * 1024)
    done = ingest(warehouse, tmp_path / "out")
    assert done.exit_code == 1 and "Traceback" not in done.output
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(full_disk_line(warehouse, small_disk)) and "rolled back whole" in line
    # Nothing half-stored, and no false alarm: either no file at all (the header or the
    # migrations did not fit, so the unfinished file went) or a whole one holding nothing.
    if warehouse.exists():
        assert query(warehouse, "SELECT count(*) AS n FROM prices")["n"][0] == 0
        answered = cli("query", "SELECT count(*) FROM ingestions", "--warehouse", str(warehouse),
                       "--format", "csv")
        assert answered.exit_code == 0 and answered.stdout == "count_star()\n0\n"
    else:
        assert not Path(f"{warehouse}.wal").exists()
        missing = cli("validations", "--warehouse", str(warehouse))
        assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_a_checkpoint_cut_short_by_a_full_disk_is_no_damage(small_disk, tmp_path):
    """The ingest commits to the WAL; the checkpoint at close stops mid-block for want of
    room. DuckDB opens the file from its WAL: `query` used to call it damaged."""
    warehouse = small_disk / "w.duckdb"
    fill(small_disk, 1500 * 1024)
    done = ingest(warehouse, tmp_path / "out")
    # The prices fit; what came after them (the validation record) may not: one line.
    if done.exit_code != 0:
        assert done.stderr.strip().startswith(full_disk_line(warehouse, small_disk))
    assert Path(f"{warehouse}.wal").exists()  # the checkpoint did not fit
    answered = cli("query", "SELECT count(*) FROM prices", "--warehouse", str(warehouse),
                   "--format", "csv")
    assert answered.exit_code == 0 and answered.stdout == "count_star()\n3654\n", answered.output


def test_a_grid_whose_store_meets_a_full_disk_is_marked_failed(small_disk, tmp_path):
    warehouse = small_disk / "w.duckdb"
    assert ingest(warehouse, tmp_path / "out").exit_code == 0
    filler = fill(small_disk, 20 * 1024)
    done = cli("train", "--cell", "rnn", "--epochs", "2", "--lookback", "10", "--hidden", "8",
               "--device", "cpu", "--warehouse", str(warehouse), "--out", str(tmp_path / "out"))
    assert done.exit_code == 2 and "Traceback" not in done.output
    assert done.stderr.strip().splitlines()[-1].startswith(full_disk_line(warehouse, small_disk))
    os.remove(filler)
    grids = query(warehouse, "SELECT status, message FROM grids")
    assert grids["status"].to_list() == ["failed"]
    assert grids["message"][0].startswith("stopped: the disk holding warehouse")
    for table in ("runs", "epoch_metrics", "predictions"):  # nothing half-stored
        assert query(warehouse, f"SELECT count(*) AS n FROM {table}")["n"][0] == 0
