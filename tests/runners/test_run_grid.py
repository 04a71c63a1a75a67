"""One grid, three ways in: the train-grid flow, plain run_grid and the CLI store the same rows.

Behaviour is compared by value: every column of runs, epoch_metrics and predictions except
those that name the grid, the host's clock or a path (timings, stored_at, grid_id,
checkpoint_path). The flow and the CLI run on Prefect; run_grid on no orchestrator at all.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from seqlab.config import Settings
from seqlab.grid import GridParams, resolve_spec
from seqlab.runners.grid import run_grid
from seqlab.warehouse import query
from tests.conftest import COINCODEX, ingest_coincodex

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"cells": ["rnn", "gru"], "depths": [1], "norms": ["none", "layer"],
        "feature_sets": ["close"], "seeds": [0], "epochs": 2, "hidden": 4, "lookback": 10}
# checkpoint_sha256 proves a file is the one its run wrote; torch.save's bytes are not a
# result two trainings must share (its archive's records take the file's name, for one).
VOLATILE = {"grid_id", "seconds", "stored_at", "checkpoint_path", "checkpoint_sha256"}
TABLES = {"runs": "run_id", "epoch_metrics": "run_id, epoch", "predictions": "run_id, date"}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    return ingest_coincodex(tmp_path_factory.mktemp("ingested"))


def _copy(ingested: Path, folder: Path) -> Settings:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ingested, folder / "w.duckdb")
    return Settings(folder / "w.duckdb", folder / "out")


def _contents(warehouse: Path) -> dict[str, pl.DataFrame]:
    frames = {}
    for table, order in TABLES.items():
        frame = query(warehouse, f"SELECT * FROM {table} ORDER BY {order}")
        frames[table] = frame.drop([c for c in frame.columns if c in VOLATILE])
    return frames


def _assert_same(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame],
                 rel_tol: float = 0.0) -> None:
    """Equal by value; with ``rel_tol``, floats within it and everything else exactly."""
    for table in TABLES:
        assert a[table].height > 0, table
        assert a[table].columns == b[table].columns, table
        if not rel_tol:
            assert a[table].equals(b[table]), f"{table} differs: {_difference(a[table], b[table])}"
            continue
        try:
            assert_frame_equal(a[table], b[table], check_exact=False, rel_tol=rel_tol, abs_tol=0.0)
        except AssertionError as exc:
            raise AssertionError(f"{table} differs: {_difference(a[table], b[table])}") from exc


def _difference(a: pl.DataFrame, b: pl.DataFrame) -> str:
    """Where two frames of the same columns differ: row counts, or each differing column's
    first differing row with both values."""
    if a.height != b.height:
        return f"{a.height} rows against {b.height}"
    found = []
    for column in a.columns:
        if a[column].dtype != b[column].dtype:
            found.append(f"{column}: {a[column].dtype} against {b[column].dtype}")
            continue
        differs = a[column].ne_missing(b[column]).arg_true()
        if differs.len():
            row = differs[0]
            found.append(f"{column}: {differs.len()} rows, first row {row}: "
                         f"{a[column][row]!r} against {b[column][row]!r}")
    return "; ".join(found) or "no column differs value by value"


def _tail(done: subprocess.CompletedProcess, chars: int = 3000) -> str:
    return (f"exit {done.returncode}\n--- stdout (tail) ---\n{done.stdout[-chars:]}"
            f"\n--- stderr (tail) ---\n{done.stderr[-chars:]}")


@pytest.fixture(scope="module")
def plain(ingested, tmp_path_factory) -> dict[str, pl.DataFrame]:
    settings = _copy(ingested, tmp_path_factory.mktemp("plain"))
    done = run_grid(resolve_spec(GridParams(**TINY)), settings, symbol="ETH", preset="quick",
                    log=lambda line: None)
    assert (done.trained, done.reused, done.failed) == (4, 0, 0)
    return _contents(settings.warehouse)


def test_the_flow_and_run_grid_store_the_same_rows(plain, ingested, tmp_path, prefect_harness):
    from seqlab.flows.train import train_grid

    settings = _copy(ingested, tmp_path)
    done = train_grid(grid=TINY, symbol="ETH", warehouse=str(settings.warehouse),
                      output_dir=str(settings.output_dir))
    assert (done["trained"], done["failed"]) == (4, 0)
    _assert_same(plain, _contents(settings.warehouse))


def test_the_cli_and_run_grid_store_the_same_rows(plain, ingested, tmp_path):
    settings = _copy(ingested, tmp_path)
    script = Path(sys.executable).with_name("seqlab")
    command = [str(script), "run", "--data", str(COINCODEX), "--symbol", "ETH",
               "--cells", "rnn,gru", "--depths", "1", "--norms", "none,layer",
               "--feature-sets", "close", "--seeds", "0", "--epochs", "2", "--hidden", "4",
               "--lookback", "10",
               "--warehouse", str(settings.warehouse), "--out", str(settings.output_dir)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    except subprocess.TimeoutExpired as exc:  # with what it had said by then
        said = [(text.decode(errors="replace") if isinstance(text, bytes) else text or "")[-3000:]
                for text in (exc.stdout, exc.stderr)]
        pytest.fail(f"seqlab run took over 600 s\n--- stdout (tail) ---\n{said[0]}"
                    f"\n--- stderr (tail) ---\n{said[1]}")
    assert done.returncode == 0, _tail(done)
    try:
        # Within 1e-6, not bit for bit: in 1 of 10 to 1 of 100 `seqlab run` processes one config's
        # float32 losses and metrics differ in their last bits (2e-7 relative, seen for
        # rnn/none only), never in run_grid or the flow in-process. Cause not found yet; a
        # real difference in what was trained is orders of magnitude larger.
        _assert_same(plain, _contents(settings.warehouse), rel_tol=1e-6)
    except AssertionError as exc:  # the CLI's own account of its grid says what went wrong
        raise AssertionError(f"{exc}\n{_tail(done)}") from exc
