"""The README's SQL examples run and return rows, also on a grid whose runs are all reused.

Issue 15: the epoch_metrics example returned no rows for a reused grid (``runs.grid_id`` is the
grid that first trained a run) and, lacking ``feature_set``, showed each epoch twice.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from seqlab.config import Settings
from seqlab.grid import GridParams, resolve_spec
from seqlab.runners.grid import run_grid
from seqlab.runners.ingest import IngestOptions, ingest_source
from seqlab.runners.report import build_report
from seqlab.sample import write_sample_csv
from seqlab.warehouse import query

pytestmark = pytest.mark.usefixtures("one_torch_thread")

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_statements() -> list[str]:
    section = README.read_text().split("## Query the results", 1)[1]
    block = re.search(r"```sql\n(.*?)```", section, re.S).group(1)
    code = "\n".join(line for line in block.splitlines() if not line.startswith("--"))
    return [s.strip() for s in code.split(";") if s.strip()]


def test_the_readme_sql_returns_rows_on_a_reused_grid(tmp_path):
    settings = Settings(tmp_path / "w.duckdb", tmp_path / "out")
    sample = write_sample_csv(tmp_path / "sample")
    with_bad_row = tmp_path / "source" / "eth.csv"
    with_bad_row.parent.mkdir()
    with_bad_row.write_text(sample.read_text() + "ETH-SYNTHETIC,2015-08-06,abc,1,1,1,1,1\n")
    ingest_source(str(with_bad_row), IngestOptions(symbol="ETH-SYNTHETIC",
                                                   warehouse=settings.warehouse,
                                                   docs_dir=tmp_path / "docs"))
    for cells in (["rnn"], ["lstm", "gru"], None):  # the last grid trains nothing
        time.sleep(1.1)  # grid ids start with the second they started in
        grid = run_grid(resolve_spec(GridParams(preset="tiny", cells=cells, epochs=2, lookback=10)),
                        settings, symbol="ETH-SYNTHETIC", preset="tiny", log=lambda line: None)
    assert (grid.trained, grid.reused) == (0, 3)
    build_report(settings.warehouse, grid_id=grid.grid_id, out_dir=tmp_path / "report")

    statements = _readme_statements()
    assert len(statements) == 5
    for sql in statements:
        assert query(settings.warehouse, sql).height > 0, sql
    epochs = query(settings.warehouse, next(s for s in statements if "epoch_metrics" in s))
    assert {"symbol", "feature_set"} <= set(epochs.columns)
    assert epochs.height == 3 * 2  # three reused runs, two epochs each, each epoch once
