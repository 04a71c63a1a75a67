"""`seqlab ingest` error paths: header-only files, folders in --json, a locked warehouse."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from seqlab.cli import app
from tests.conftest import COINCODEX

_HOLD = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(60)"


def test_header_only_file_is_an_error(tmp_path):
    source = tmp_path / "empty.csv"
    source.write_text("date,open,high,low,close,volume\n")
    result = CliRunner().invoke(app, ["ingest", str(source), "--warehouse", str(tmp_path / "w.duckdb")])
    assert result.exit_code == 1
    assert f"{source}: no data rows" in result.stderr


def test_folder_json_has_the_summary_keys_at_the_top(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.csv").write_bytes(COINCODEX.read_bytes())
    result = CliRunner().invoke(app, ["ingest", str(folder), "--json",
                                      "--warehouse", str(tmp_path / "w.duckdb")])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    for key in ("source", "sha256", "layout", "rows_read", "rows_valid", "rows_quarantined",
                "rows_inserted", "rows_updated", "data_version"):
        assert key in payload, key
    assert payload["layout"] == "coincodex" and payload["rows_inserted"] == 3654


def test_locked_warehouse_is_a_clear_error_not_a_traceback(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(warehouse)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        done = subprocess.run(
            [sys.executable, "-m", "seqlab.cli", "ingest", str(COINCODEX), "--warehouse", str(warehouse)],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "SEQLAB_LOCK_TIMEOUT_S": "1"},
        )
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert str(warehouse) in done.stderr and str(holder.pid) in done.stderr
