"""`seqlab query` is bounded: a time limit, a row cap, and output streamed in batches."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqlab.cli import app
from tests.conftest import ingest_coincodex

SEQLAB = Path(sys.executable).parent / "seqlab"
# The child's peak RSS, measured by a parent that runs nothing else.
_PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "sys.stderr.write(f'peak_rss_kb={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\\n')\n"
    "sys.exit(code)\n"
)
# Importing polars, pyarrow and duckdb is ~150 MB; holding 5M rows as before was 1.7 GB.
MEMORY_BOUND_MB = 450


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    return ingest_coincodex(tmp_path_factory.mktemp("limits"))


def _query(warehouse: Path, sql: str, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run `seqlab query` in a child; return it and its peak RSS in MB."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(SEQLAB), "query", sql, "--warehouse", str(warehouse),
         *args],
        capture_output=True, text=True, timeout=120,
    )
    peak = next(line for line in done.stderr.splitlines() if line.startswith("peak_rss_kb="))
    done.stderr = done.stderr.replace(peak + "\n", "")
    return done, int(peak.split("=")[1]) / 1024


def test_a_huge_cross_join_is_interrupted_at_the_time_limit(warehouse):
    # 10^12 row pairs: hours of work for DuckDB on this machine.
    sql = ("SELECT count(*) FROM range(1000000) a, range(1000000) b "
           "WHERE (a.range * b.range) % 7 = 3")
    started = time.monotonic()
    done, _ = _query(warehouse, sql, "--timeout-s", "2")
    assert time.monotonic() - started < 20  # 2 s of query plus the CLI's start-up
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: query on {warehouse} stopped after its time limit of 2 s")
    assert "Traceback" not in done.stderr


def test_a_large_result_is_cut_at_max_rows_in_bounded_memory(warehouse):
    done, peak_mb = _query(warehouse, "SELECT range FROM range(5000000)", "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 100_000 and rows[-1] == {"range": 99_999}
    assert done.stderr == "note: output cut at 100,000 rows (--max-rows); the query has more\n"
    assert peak_mb < MEMORY_BOUND_MB


def test_uncapped_output_streams_in_constant_memory(warehouse):
    done, peak_mb = _query(warehouse, "SELECT range, 'row ' || range AS label FROM range(5000000)",
                           "--format", "csv", "--max-rows", "0")
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.count("\n") == 5_000_001 and done.stdout.endswith("4999999,row 4999999\n")
    assert peak_mb < MEMORY_BOUND_MB


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_the_cap_says_so_only_when_it_cuts(warehouse, fmt):
    runner = CliRunner()
    base = ["query", "SELECT range AS n FROM range(10)", "--warehouse", str(warehouse), "--format", fmt]
    exact = runner.invoke(app, [*base, "--max-rows", "10"])
    assert exact.exit_code == 0 and exact.stderr == "" and "9" in exact.stdout
    cut = runner.invoke(app, [*base, "--max-rows", "4"])
    assert cut.exit_code == 0 and "cut at 4 rows" in cut.stderr
    if fmt == "json":
        assert json.loads(cut.stdout) == [{"n": 0}, {"n": 1}, {"n": 2}, {"n": 3}]
    elif fmt == "csv":
        assert cut.stdout == "n\n0\n1\n2\n3\n"
    else:
        assert "shape: (4, 1)" in cut.stdout


def test_limits_cannot_be_negative(warehouse):
    result = CliRunner().invoke(app, ["query", "SELECT 1", "--warehouse", str(warehouse),
                                      "--timeout-s", "-1"])
    assert result.exit_code == 2 and "cannot be negative" in result.stderr
