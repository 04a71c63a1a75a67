"""Carried work: a grid exported as a folder, trained without the warehouse, imported back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seqlab.config import Settings
from seqlab.grid import GridParams, resolve_spec
from seqlab.grid.carried import CarriedWorkError, train_work
from seqlab.runners.carried import export_work, import_results
from seqlab.runners.grid import run_grid
from seqlab.runners.ingest import IngestOptions, ingest_source
from seqlab.sample import SYNTHETIC_SYMBOL, SampleSpec, write_sample_csv
from seqlab.warehouse import query

GRID = GridParams(preset="tiny", cells=["rnn", "gru"], depths=[1, 2], hidden=16, lookback=5,
                  epochs=2)
REPO_ROOT = Path(__file__).resolve().parents[2]
LOSSES = "SELECT run_id, epoch, train_loss, test_loss, val_loss FROM epoch_metrics ORDER BY run_id, epoch"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("carried")
    csv = write_sample_csv(folder / "prices.csv", SampleSpec(days=200, gaps=0))
    ingest_source(str(csv), IngestOptions(symbol=SYNTHETIC_SYMBOL, warehouse=folder / "w.duckdb",
                                          docs_dir=folder / "docs"))
    return folder / "w.duckdb"


def _settings(ingested: Path, folder: Path) -> Settings:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ingested, folder / "w.duckdb")
    return Settings(folder / "w.duckdb", folder / "out")


def test_exported_trained_and_imported_equals_a_grid_trained_here(ingested, tmp_path):
    settings = _settings(ingested, tmp_path / "here")
    work = export_work(resolve_spec(GRID), settings, tmp_path / "carry", symbol=SYNTHETIC_SYMBOL,
                       preset="tiny")
    assert len(work["requests"]) == 4 and sorted(p.name for p in (tmp_path / "carry").iterdir()) \
        == ["prices.parquet", "work.json"]
    # The far side: a fresh folder, no warehouse; the first pack, then a deadline stop.
    far = tmp_path / "far"
    shutil.copytree(tmp_path / "carry", far)
    first = train_work(far, tmp_path / "results", deadline_s=0.0, log=lambda line: None)
    assert (first["trained"], first["left"]) == (2, 2) and "would end after" in first["stopped"]
    resumed = train_work(far, tmp_path / "results", log=lambda line: None)
    assert (resumed["earlier"], resumed["trained"], resumed["left"]) == (2, 2, 0)

    done = import_results(settings, tmp_path / "carry", tmp_path / "results")
    assert (done.status, done.trained, done.reused, done.failed) == ("completed", 4, 0, 0)
    runs = query(settings.warehouse, "SELECT grid_id, status, determinism FROM runs")
    assert set(runs["grid_id"]) == {done.grid_id} and set(runs["status"]) == {"ok"}
    assert {json.loads(d)["pack"]["mode"] for d in runs["determinism"]} == {"fused"}
    grid = query(settings.warehouse, f"SELECT dispatch FROM grids WHERE grid_id = '{done.grid_id}'")
    assert grid["dispatch"].to_list() == ["carried"]

    plain = _settings(ingested, tmp_path / "plain")
    run_grid(resolve_spec(GRID), plain, symbol=SYNTHETIC_SYMBOL, log=lambda line: None)
    ours, theirs = query(settings.warehouse, LOSSES), query(plain.warehouse, LOSSES)
    assert ours["run_id"].to_list() == theirs["run_id"].to_list()
    for column in ("train_loss", "test_loss", "val_loss"):
        assert ours[column].to_numpy() == pytest.approx(theirs[column].to_numpy(), rel=1e-4)


def test_missing_results_are_failed_runs_and_are_exported_again(ingested, tmp_path):
    settings = _settings(ingested, tmp_path / "here")
    spec = resolve_spec(GRID)
    export_work(spec, settings, tmp_path / "carry", symbol=SYNTHETIC_SYMBOL)
    train_work(tmp_path / "carry", tmp_path / "results", pack_mode="streams", deadline_s=0.0,
               log=lambda line: None)  # one cell's pack only
    done = import_results(settings, tmp_path / "carry", tmp_path / "results")
    assert (done.status, done.trained, done.failed) == ("completed_with_failures", 2, 2)
    errors = query(settings.warehouse, "SELECT error FROM runs WHERE status = 'failed'")["error"]
    assert all("no result in the carried results" in e for e in errors)
    again = export_work(spec, settings, tmp_path / "again", symbol=SYNTHETIC_SYMBOL)
    assert again["already_trained"] == 2 and len(again["requests"]) == 2


@pytest.mark.parametrize("field,message", [("code_version", "by code"),
                                           ("data_version", "the validated data here")])
def test_results_of_other_code_or_data_are_refused(ingested, tmp_path, field, message):
    settings = _settings(ingested, tmp_path / "here")
    export_work(resolve_spec(GRID), settings, tmp_path / "carry", symbol=SYNTHETIC_SYMBOL)
    work_file = tmp_path / "carry" / "work.json"
    work = json.loads(work_file.read_text())
    work[field] = "0" * 64
    work_file.write_text(json.dumps(work))
    with pytest.raises(CarriedWorkError, match=message):
        import_results(settings, tmp_path / "carry", tmp_path / "results")
    grids = query(settings.warehouse, "SELECT count(*) AS n FROM grids")["n"][0]
    assert grids == 0  # refused before a grid was opened


def test_the_far_side_needs_neither_duckdb_nor_prefect(ingested, tmp_path):
    """A GPU machine has torch, polars and pydantic only: training there imports nothing else."""
    settings = _settings(ingested, tmp_path / "here")
    export_work(resolve_spec(GRID), settings, tmp_path / "carry", symbol=SYNTHETIC_SYMBOL)
    program = (
        "import sys\n"
        "for name in ('duckdb', 'prefect', 'pandera', 'great_expectations', 'typer'):\n"
        "    sys.modules[name] = None  # importing any of them fails\n"
        "from seqlab.grid.carried import train_work\n"
        f"done = train_work({str(tmp_path / 'carry')!r}, {str(tmp_path / 'results')!r},\n"
        "                  pack_mode='streams', log=lambda line: None)\n"
        "assert done['trained'] == 4, done\n")
    finished = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                              timeout=300, cwd=REPO_ROOT)
    assert finished.returncode == 0, finished.stderr[-3000:]
    done = import_results(settings, tmp_path / "carry", tmp_path / "results")
    assert (done.trained, done.failed) == (4, 0)


def test_an_estimate_keeps_even_the_first_pack_from_starting(ingested, tmp_path):
    """With the measured epoch time's estimate, no pack starts that would end after the
    deadline, the first one included; each finished pack is handed over at once."""
    settings = _settings(ingested, tmp_path / "here")
    export_work(resolve_spec(GRID), settings, tmp_path / "carry", symbol=SYNTHETIC_SYMBOL)
    none = train_work(tmp_path / "carry", tmp_path / "results", deadline_s=60.0,
                      estimate_s=lambda pack: 1e6, log=lambda line: None)
    assert (none["trained"], none["left"]) == (0, 4) and "expected to take" in none["stopped"]
    handed: list[dict] = []
    done = train_work(tmp_path / "carry", tmp_path / "results", deadline_s=3600.0,
                      estimate_s=lambda pack: 1.0, on_pack=handed.append, log=lambda line: None)
    assert done["left"] == 0 and [h["trained"] for h in handed] == [2, 4]
