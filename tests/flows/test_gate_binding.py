"""Every trainer honours the dataset gate the same way: failed or missing validation refuses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqlab.tasks.grid import snapshot_prices
from seqlab.warehouse import load_prices, load_validations
from seqlab.warehouse.gate import GateClosed, require_validated
from tests.conftest import REAL_DATA, ingest_coincodex

SEQLAB = Path(sys.executable).parent / "seqlab"
YAHOO = REAL_DATA / "eth_daily_yahoo_2017-11-09_2024-07-26.csv"
# An ingest killed (SIGKILL) right after its store, before its dataset checks are recorded.
_KILLED_INGEST = """
import os, signal, sys
from pathlib import Path
from seqlab.runners import ingest as pipeline
pipeline.gate_dataset = lambda options, version: os.kill(os.getpid(), signal.SIGKILL)
options = pipeline.IngestOptions(symbol="ETH", warehouse=Path(sys.argv[2]), docs_dir=Path(sys.argv[3]))
pipeline.ingest_source(sys.argv[1], options)
"""


def _env(tmp_path: Path) -> dict:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    for name in ("SEQLAB_WAREHOUSE", "SEQLAB_OUTPUT_DIR", "SEQLAB_DATA_DIR", "PREFECT_API_URL"):
        env.pop(name, None)
    return env


def _seqlab(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(SEQLAB), *args], cwd=tmp_path, env=_env(tmp_path),
                          capture_output=True, text=True, timeout=timeout)


def _assert_one_line_refusal(done: subprocess.CompletedProcess, *expected: str) -> None:
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    refusals = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(refusals) == 1 and refusals[0].startswith("error: refusing to train on")
    for text in expected:
        assert text in refusals[0]


@pytest.fixture(scope="module")
def short_csv(tmp_path_factory, coincodex_prices) -> Path:
    """20 real days: far too few rows for the critical `enough_rows` expectation."""
    path = tmp_path_factory.mktemp("short") / "short.csv"
    coincodex_prices.head(20).drop("symbol").write_csv(path)
    return path


@pytest.fixture(scope="module")
def unvalidated(tmp_path_factory) -> Path:
    """A warehouse whose current prices were stored by an ingest killed before validation."""
    folder = tmp_path_factory.mktemp("unvalidated")
    warehouse = ingest_coincodex(folder)
    assert require_validated(warehouse, "ETH").prices.height == 3654  # validated and passing
    killed = subprocess.run([sys.executable, "-c", _KILLED_INGEST, str(YAHOO), str(warehouse),
                             str(folder / "docs")], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr
    assert load_prices(warehouse, "ETH").height > 3654 - 1  # Yahoo's rows were stored ...
    versions = set(load_validations(warehouse, "ETH")["data_version"])
    assert len(versions) == 1  # ... and only the CoinCodex content was ever validated
    return warehouse


def test_train_refuses_a_failed_critical_expectation(tmp_path, short_csv):
    warehouse = tmp_path / "w.duckdb"
    done = _seqlab(tmp_path, "train", "--data", str(short_csv), "--symbol", "SHORT", "--epochs", "1",
                   "--warehouse", str(warehouse), "--out", str(tmp_path / "out"))
    _assert_one_line_refusal(done, "SHORT", "critical expectations failed: ['enough_rows']")
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_train_refuses_prices_stored_without_a_validation(tmp_path, unvalidated):
    done = _seqlab(tmp_path, "train", "--epochs", "1", "--warehouse", str(unvalidated),
                   "--out", str(tmp_path / "out"))
    _assert_one_line_refusal(done, "has not been validated", "without a recorded validation")
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_run_refuses_a_failed_critical_expectation_in_one_line(tmp_path, short_csv):
    done = _seqlab(tmp_path, "run", "--data", str(short_csv), "--symbol", "SHORT", "--preset",
                   "tiny", "--epochs", "1")
    _assert_one_line_refusal(done, "SHORT", "['enough_rows']")
    grids = tmp_path / "data" / "seqlab.duckdb"
    from seqlab.warehouse import query

    assert query(grids, "SELECT count(*) n FROM grids")["n"][0] == 0  # nothing started


def test_the_train_grid_flow_refuses_prices_stored_without_a_validation(
    prefect_harness, unvalidated, tmp_path
):
    from seqlab.flows.train import train_grid

    with pytest.raises(GateClosed, match="without a recorded validation"):
        train_grid(symbol="ETH", grid={"preset": "tiny", "epochs": 1}, warehouse=str(unvalidated),
                   output_dir=str(tmp_path / "out"))


def test_a_snapshot_of_prices_that_changed_after_the_gate_is_refused(unvalidated, tmp_path):
    stale = load_validations(unvalidated, "ETH")["data_version"][0]
    with pytest.raises(GateClosed, match="changed .* after the gate passed them"):
        snapshot_prices.fn(unvalidated, "ETH", stale, tmp_path)
    assert list(tmp_path.iterdir()) == []
