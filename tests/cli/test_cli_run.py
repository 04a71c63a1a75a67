"""`seqlab run` with its defaults, as `make run` calls it, from an empty working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from seqlab.warehouse import query


def test_run_on_defaults_builds_warehouse_grid_and_report(tmp_path):
    seqlab = Path(sys.executable).parent / "seqlab"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    for name in ("SEQLAB_WAREHOUSE", "SEQLAB_OUTPUT_DIR", "SEQLAB_DATA_DIR", "PREFECT_API_URL"):
        env.pop(name, None)
    done = subprocess.run([str(seqlab), "run", "--preset", "tiny", "--epochs", "1"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "3 trained, 0 reused, 0 failed" in done.stdout
    assert "report: " in done.stdout and "seqlab query" in done.stdout
    assert "from report_runs where grid_id = '" in done.stdout  # this grid's runs only
    said = done.stderr  # what it is doing, in order, from the first second
    steps = ["checking the grid's settings", "grid: 3 configs", "ingested 3646 rows / 0 quarantined",
             "gate passed", "3 configs to train, 0 reused", "starting Prefect"]
    assert [said.find(step) for step in steps] == sorted(said.find(step) for step in steps)
    assert -1 not in [said.find(step) for step in steps], said[-2000:]
    warehouse = tmp_path / "data" / "seqlab.duckdb"
    runs = query(warehouse, "SELECT symbol, status FROM runs")
    assert runs.height == 3 and set(runs["symbol"]) == {"ETH-SYNTHETIC"}
    assert (tmp_path / "data" / "output" / "data_docs" / "ETH-SYNTHETIC" / "index.html").is_file()
    assert list((tmp_path / "data" / "output" / "reports").glob("*/index.html"))
