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


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "1e300"])
def test_the_time_limit_must_be_finite_and_above_zero(warehouse, value):
    result = CliRunner().invoke(app, ["query", "SELECT 1", "--warehouse", str(warehouse),
                                      "--timeout-s", value])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        f"error: --timeout-s must be a finite number of seconds above 0, not {float(value)!r}"]


def test_max_rows_cannot_be_negative(warehouse):
    result = CliRunner().invoke(app, ["query", "SELECT 1", "--warehouse", str(warehouse),
                                      "--max-rows", "-1"])
    assert result.exit_code == 2 and "cannot be negative" in result.stderr


def test_memory_is_capped_and_the_cap_is_one_line(warehouse, monkeypatch):
    # 2,000 strings of 1 MB joined: 4.2 GB before the cap; 64 MiB here keeps the test light.
    sql = "select length(string_agg(repeat('x', 1000000), '')) from range(2000)"
    for args, env, shown in ((["--memory-limit", "64MiB"], None, "0.0625 GiB"),
                             ([], "64MiB", "0.0625 GiB")):
        if env:
            monkeypatch.setenv("SEQLAB_QUERY_MEMORY_LIMIT", env)
        done = CliRunner().invoke(app, ["query", sql, "--warehouse", str(warehouse), *args])
        assert done.exit_code == 2 and "Traceback" not in done.output
        assert done.stderr.strip().splitlines() == [
            f"error: query on {warehouse} needs more than its memory limit of {shown} "
            "(--memory-limit or SEQLAB_QUERY_MEMORY_LIMIT); narrow it or allow more"]
    bad = CliRunner().invoke(app, ["query", "select 1", "--warehouse", str(warehouse),
                                   "--memory-limit", "lots"])
    assert bad.exit_code == 2 and "'lots' is not a memory size" in bad.stderr


def test_the_default_memory_limit_is_two_gib(warehouse):
    done = CliRunner().invoke(app, ["query", "select current_setting('memory_limit') as m",
                                    "--warehouse", str(warehouse), "--format", "csv"])
    assert done.exit_code == 0 and done.stdout == "m\n2.0 GiB\n"


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_terminal_escape_sequences_in_stored_text_are_never_printed_raw(warehouse, fmt):
    sql = "select chr(27) || ']0;pwned' || chr(7) || chr(27) || '[31mred' || chr(13) || 'x' as t"
    done = CliRunner().invoke(app, ["query", sql, "--warehouse", str(warehouse), "--format", fmt])
    assert done.exit_code == 0, done.output
    for raw in ("\x1b", "\x07", "\r"):
        assert raw not in done.stdout
    assert ("\\u001b" if fmt == "json" else "\\x1b[31mred") in done.stdout
