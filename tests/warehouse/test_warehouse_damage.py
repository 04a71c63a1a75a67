"""A damaged warehouse is a clear error naming the file, never a traceback or a quiet answer."""

from __future__ import annotations

import os
import pickle
import random
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from seqlab.cli import app
from seqlab.warehouse import WarehouseDamaged, load_prices, query
from tests.conftest import COINCODEX, ingest_coincodex

SEQLAB = Path(sys.executable).parent / "seqlab"
# 4 KiB of noise. Not a repeated pattern: DuckDB's checksum XORs 8-byte words, so a word
# written an even number of times over zeros cancels out and the block still checks out.
GARBAGE = random.Random(13).randbytes(4096)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    return ingest_coincodex(tmp_path_factory.mktemp("damage"))


def _layout(path: Path) -> tuple[int, int]:
    """(block size, first block holding prices data) of a healthy file."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        block_size = con.execute("SELECT block_size FROM pragma_database_size()").fetchone()[0]
        block = con.execute(
            "SELECT min(block_id) FROM pragma_storage_info('prices') WHERE block_id >= 0"
        ).fetchone()[0]
    finally:
        con.close()
    return block_size, block


def _write_at(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)


def _damage(kind: str, healthy: Path, target: Path) -> None:
    if kind == "directory":
        target.mkdir()
        return
    if kind == "csv renamed":
        shutil.copy(COINCODEX, target)
        return
    if kind == "empty file":
        target.touch()
        return
    shutil.copy(healthy, target)
    size = target.stat().st_size
    block_size, prices_block = _layout(healthy)
    if kind == "garbled middle":
        _write_at(target, size // 2, GARBAGE)
    elif kind == "garbled prices block":
        _write_at(target, 3 * 4096 + prices_block * block_size + block_size // 2, GARBAGE)
    elif kind == "truncated to half":
        os.truncate(target, size // 2)
    elif kind == "truncated at a block boundary":  # only the table scan can tell
        os.truncate(target, 3 * 4096 + prices_block * block_size)


KINDS = {
    "directory": "is a directory",
    "csv renamed": "is not a DuckDB database file",
    "empty file": "is an empty file",
    "garbled middle": "is damaged: the checksums",
    "garbled prices block": "is damaged: the checksums",
    "truncated to half": "is damaged",
    "truncated at a block boundary": "is damaged",
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_query_on_a_damaged_warehouse_is_exit_2_naming_the_file(kind, healthy, tmp_path):
    target = tmp_path / "broken.duckdb"
    _damage(kind, healthy, target)
    done = subprocess.run(
        [str(SEQLAB), "query", "SELECT count(*) n FROM prices", "--warehouse", str(target)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""  # not a number from the half that survived
    assert str(target) in done.stderr and KINDS[kind] in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_report_refuses_a_damaged_warehouse(healthy, tmp_path):
    target = tmp_path / "broken.duckdb"
    _damage("garbled middle", healthy, target)
    result = CliRunner().invoke(app, ["report", "--grid-id", "any", "--warehouse", str(target),
                                      "--out", str(tmp_path / "reports")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert f"warehouse {target} is damaged" in result.stderr


def test_a_damaged_block_met_by_any_reader_is_warehouse_damaged(healthy, tmp_path):
    """Readers that do not verify the file still never hand out DuckDB's raw error."""
    target = tmp_path / "broken.duckdb"
    _damage("garbled prices block", healthy, target)
    with pytest.raises(WarehouseDamaged, match="checksums of 1 of its"):
        load_prices(target, "ETH")  # every open verifies the file first (issue 23)
    with pytest.raises(WarehouseDamaged, match=str(target)):
        query(target, "SELECT sum(close) FROM prices")


COMMANDS = {
    "validations": ["validations"],
    "ingest": ["ingest", str(COINCODEX)],
    "predict best": ["predict", "best"],
    "train": ["train", "--cell", "rnn", "--epochs", "1", "--lookback", "10", "--hidden", "4",
              "--device", "cpu"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", ["truncated to half", "garbled middle"])
def test_every_command_checks_the_file_before_it_reads_or_writes(kind, command, healthy, tmp_path):
    """Issue 23: `validations` and `ingest` exited 0 on a half-size copy (ingest wrote into
    it), `predict best` printed a price and `train` trained before failing on store."""
    target = tmp_path / "broken.duckdb"
    _damage(kind, healthy, target)
    before = target.read_bytes()
    done = CliRunner().invoke(app, [*COMMANDS[command], "--warehouse", str(target),
                                    *(["--out", str(tmp_path / "out")] if command in ("ingest", "train") else [])])
    assert done.exit_code in (1, 2) and "Traceback" not in done.output
    assert f"error: warehouse {target} is damaged" in done.stderr
    assert "epoch" not in done.output and "predicted close" not in done.output
    assert target.read_bytes() == before  # nothing written into the damaged file


def test_a_healthy_warehouse_passes_and_errors_pickle(healthy):
    runner = CliRunner()
    result = runner.invoke(app, ["query", "SELECT count(*) n FROM prices", "--warehouse", str(healthy),
                                 "--format", "csv"])
    assert result.exit_code == 0 and result.stdout == "n\n3654\n"
    error = WarehouseDamaged(healthy, "it ends partway")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, str(copy)) == (healthy, str(error))


# Tries to open the file for writing from another process, as the grid's writer does.
_WRITER_PROBE = """
import sys, duckdb
try:
    duckdb.connect(sys.argv[1]).close()
except duckdb.Error as exc:
    print("refused" if "Could not set lock" in str(exc) else f"error: {exc}")
else:
    print("got in")
"""


def _writer_gets_in(path: Path) -> str:
    done = subprocess.run([sys.executable, "-c", _WRITER_PROBE, str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_verifying_a_warehouse_keeps_the_readers_lock_until_it_closes(healthy, tmp_path):
    """Regression: the checksum pass opened and closed its own handle on the file, and closing
    any descriptor drops every POSIX lock the process holds on it, DuckDB's shared lock
    included. A grid's writer then checkpointed under the reader, and the reader's next block
    read called the healthy file damaged."""
    from seqlab.warehouse import connect
    from seqlab.warehouse.sandbox import open_user_query

    target = tmp_path / "w.duckdb"
    shutil.copy(healthy, target)
    with connect(target, read_only=True, verify=True) as con:
        assert _writer_gets_in(target) == "refused"
        assert con.execute("SELECT count(*) FROM prices").fetchone() == (3654,)
    with open_user_query(target, "SELECT count(*) AS n FROM prices") as stream:
        assert _writer_gets_in(target) == "refused"
        assert [batch.to_pylist() for batch in stream.batches] == [[{"n": 3654}]]
    assert _writer_gets_in(target) == "got in"  # and it lets go once the read is over
