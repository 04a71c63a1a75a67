"""`seqlab publish` on a small real grid (CoinCodex file, a few epochs, trained without Prefect).

The folder is read back the way a reader of ``docs/study`` would: the Parquet files are the
warehouse's rows, the verdicts recompute from them, ``study.json`` names the real file by
its sha256 and a command that the CLI parses back into the same grid.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil

import polars as pl
import pytest
import typer
from typer.testing import CliRunner

import seqlab.runtime.job
from seqlab.cli import app
from seqlab.config import Settings
from seqlab.grid import GridParams, resolve_spec
from seqlab.grid.requests import code_version
from seqlab.report.claims import claims_document, evaluate_claims
from seqlab.report.output import MANIFEST
from seqlab.report.publish import (
    EPOCH_SCHEMA,
    PREDICTION_COLUMNS,
    RUN_COLUMNS,
    verdicts_markdown,
)
from seqlab.runners.grid import run_grid
from seqlab.runners.report import build_report
from seqlab.warehouse import current_data_version, query
from seqlab.warehouse.runs import start_grid
from tests.conftest import COINCODEX, ingest_coincodex

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GRID = GridParams(preset="tiny", cells=["rnn", "gru"], depths=[1], norms=["none", "layer"],
                  feature_sets=["close"], seeds=[0, 1], epochs=4, hidden=8, batch_size=256)
N_RUNS = 8
EXPORTS = ("runs.parquet", "epoch_metrics.parquet", "predictions.parquet")


def publish(*args: str):
    return CliRunner().invoke(app, ["publish", *args])


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("publish")
    warehouse = ingest_coincodex(root)
    settings = Settings(warehouse, root / "output")
    grid_id = run_grid(resolve_spec(GRID), settings, symbol="ETH", preset="tiny",
                       log=lambda line: None).grid_id
    built = build_report(warehouse, grid_id=grid_id, out_dir=root / "report")
    out = root / "docs" / "study"
    done = publish("--warehouse", str(warehouse), "--out", str(out))  # the latest grid
    assert done.exit_code == 0, done.output
    return warehouse, grid_id, built, out, done.output


def test_it_prints_every_file_it_wrote_with_its_size(study) -> None:
    _, grid_id, _, out, printed = study
    assert f"published grid {grid_id} to {out}" in printed
    written = json.loads((out / MANIFEST).read_text())["files"]
    for name in ("report.md", "claims.json", "verdicts.md", "study.json", *EXPORTS):
        assert name in written and (out / name).is_file()
        assert name in printed
    assert any(name.startswith("figures/") for name in written)
    assert "index.html" not in written and "total" in printed
    report = (out / "report.md").read_text()
    assert f"`{COINCODEX.name}`" in report  # the data file by name, no folder of this machine
    assert str(COINCODEX.parent) not in report and str(out.parents[1]) not in report


def test_the_parquet_files_are_the_warehouse_rows_of_the_grid(study) -> None:
    warehouse, grid_id, _, out, _ = study
    where = f"grid_id = '{grid_id}'"
    runs = pl.read_parquet(out / "runs.parquet")
    assert runs.columns == list(RUN_COLUMNS) and runs.height == N_RUNS
    stored = query(warehouse, f"SELECT {', '.join(RUN_COLUMNS)} FROM report_runs WHERE {where}")
    assert runs.sort("run_id").equals(stored.sort("run_id"))

    epochs = pl.read_parquet(out / "epoch_metrics.parquet")
    assert epochs.schema == pl.Schema(EPOCH_SCHEMA)
    stored = query(warehouse, f"SELECT e.run_id, e.epoch, e.train_loss, e.val_loss, e.test_loss "
                              f"FROM epoch_metrics e JOIN grid_runs g USING (run_id) WHERE {where}")
    assert epochs.height == stored.height == N_RUNS * 4
    assert epochs.equals(stored.cast(EPOCH_SCHEMA).sort("run_id", "epoch"))  # float32 losses

    predictions = pl.read_parquet(out / "predictions.parquet")
    stored = query(warehouse, f"SELECT p.{', p.'.join(PREDICTION_COLUMNS)} FROM predictions p "
                              f"JOIN grid_runs g USING (run_id) WHERE {where}")
    assert predictions.height > 0 and predictions.equals(stored.sort("run_id", "date"))
    sizes = {name: (out / name).stat().st_size for name in EXPORTS}
    print(f"parquet sizes for {N_RUNS} runs x 4 epochs: {sizes}")


def test_the_verdicts_recompute_from_the_parquet_files(study) -> None:
    _, _, built, out, _ = study
    published = json.loads((out / "claims.json").read_text())
    assert (out / "claims.json").read_bytes() == (built.out_dir / "claims.json").read_bytes()
    frames = {name: pl.read_parquet(out / f"{name}.parquet")
              for name in ("runs", "epoch_metrics", "predictions")}
    again = claims_document(evaluate_claims(frames["runs"], frames["epoch_metrics"],
                                            frames["predictions"]))
    for claim, redone in zip(published["claims"], again["claims"], strict=True):
        assert claim["verdict"] == redone["verdict"]
        for c, r in zip(claim["comparisons"], redone["comparisons"], strict=True):
            assert c["verdict"] == r["verdict"] and c["n"] == r["n"]
            if c["ratio"] is not None:  # float32 losses: equal to a few parts in 1e6
                assert r["ratio"] == pytest.approx(c["ratio"], rel=1e-4)


def test_verdicts_md_has_one_row_per_claim_with_its_verdict(study) -> None:
    out = study[3]
    claims = json.loads((out / "claims.json").read_text())["claims"]
    rows = [line for line in (out / "verdicts.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| claim |")]
    assert len(rows) == len(claims) == 6
    for row, claim in zip(rows, claims, strict=True):
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert cells[0] == f"{claim['number']}. {claim['statement']}"
        assert cells[1] == claim["verdict"]


def test_study_json_names_the_real_file_the_code_and_the_devices(study) -> None:
    warehouse, grid_id, _, out, _ = study
    record = json.loads((out / "study.json").read_text())
    grid = query(warehouse, f"SELECT * FROM grids WHERE grid_id = '{grid_id}'").row(0, named=True)
    assert record["grid_id"] == grid_id and record["symbol"] == "ETH"
    [source] = record["data"]["files"]
    assert source["name"] == COINCODEX.name  # a name, not this machine's folder
    assert source["sha256"] == hashlib.sha256(COINCODEX.read_bytes()).hexdigest()
    assert record["data"]["data_version"] == current_data_version(warehouse, "ETH")
    assert record["code"]["code_version"] == grid["code_version"] == code_version()
    assert record["code"]["checkout_matches_code_version"] is True
    assert record["runs"] == {"total": N_RUNS, "by_status": {"ok": N_RUNS}, "reused": 0}
    assert record["devices"] == {"cpu": N_RUNS}
    assert [d["device_type"] for d in record["determinism"]] == ["cpu"]
    assert record["files"]["runs.parquet"]["bytes"] == (out / "runs.parquet").stat().st_size


def test_the_command_parses_back_into_the_same_grid(study, monkeypatch) -> None:
    """The command goes through `seqlab run`'s own parsing up to the ingest, and stops there."""
    out = study[3]
    command = json.loads((out / "study.json").read_text())["command"]
    words = shlex.split(command)
    assert words[:2] == ["seqlab", "run"] and "--preset" in words and "tiny" in words
    seen = {}

    def stop(data, spec, settings, options, **rest):
        seen.update(data=data, symbol=options.symbol, spec=spec)
        raise typer.Exit(0)

    monkeypatch.setattr(seqlab.runtime.job, "ingest_and_plan", stop)
    done = CliRunner().invoke(app, words[1:])
    assert done.exit_code == 0, done.output
    assert seen == {"data": COINCODEX.name, "symbol": "ETH", "spec": resolve_spec(GRID)}


def test_a_second_publish_replaces_only_its_own_files(study) -> None:
    warehouse, grid_id, _, out, _ = study
    (out / "NOTES.md").write_text("mine")
    manifest = json.loads((out / MANIFEST).read_text())
    old = b"from an earlier publish"
    (out / "old.parquet").write_bytes(old)  # listed with the hash seqlab wrote it with
    files = {**manifest["files"], "old.parquet": hashlib.sha256(old).hexdigest()}
    (out / MANIFEST).write_text(json.dumps({"files": files}))
    before = json.loads((out / "study.json").read_text())["created_at"]
    done = publish("--warehouse", str(warehouse), "--out", str(out), "--grid", grid_id)
    assert done.exit_code == 0, done.output
    assert (out / "NOTES.md").read_text() == "mine"
    assert not (out / "old.parquet").exists()
    assert json.loads((out / "study.json").read_text())["created_at"] > before
    assert sorted(json.loads((out / MANIFEST).read_text())["files"]) == sorted(manifest["files"])


def test_publish_trusts_no_manifest_entry_and_writes_through_no_temp_link(study, tmp_path) -> None:
    warehouse, grid_id = study[:2]
    out = tmp_path / "study"
    assert publish("--warehouse", str(warehouse), "--out", str(out)).exit_code == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (out / ".study.json.tmp").symlink_to(victim)
    again = publish("--warehouse", str(warehouse), "--out", str(out))
    assert again.exit_code == 0, again.output
    assert victim.read_text() == "keep" and not (out / "study.json").is_symlink()
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["files"]["../victim.txt"] = hashlib.sha256(b"keep").hexdigest()
    (out / MANIFEST).write_text(json.dumps(manifest))
    refused = publish("--warehouse", str(warehouse), "--out", str(out))
    assert refused.exit_code == 2 and "'../victim.txt', not a file a report writes" in refused.output
    assert victim.read_text() == "keep"


def test_a_folder_with_a_users_file_is_refused_untouched(study, tmp_path) -> None:
    warehouse = study[0]
    mine = tmp_path / "docs"
    mine.mkdir()
    (mine / "index.md").write_text("my docs")
    done = publish("--warehouse", str(warehouse), "--out", str(mine))
    assert done.exit_code == 2
    assert done.output.count("\n") == 1 and "index.md" in done.output
    assert [p.name for p in mine.iterdir()] == ["index.md"]
    assert (mine / "index.md").read_text() == "my docs"


def test_an_unknown_or_unfinished_grid_is_one_line(study, tmp_path) -> None:
    warehouse = tmp_path / "copy.duckdb"
    shutil.copy(study[0], warehouse)
    grid = query(warehouse, "SELECT * FROM grids").row(0, named=True)
    start_grid(warehouse, grid_id="still-running", symbol="ETH", preset="tiny", spec={},
               spec_key="x", data_version=grid["data_version"], code_version="x",
               dispatch="local", n_configs=1)
    for grid_id, words in (("nope", "not in warehouse"), ("still-running", "not finished"),
                           ("latest", "not finished")):
        done = publish("--warehouse", str(warehouse), "--out", str(tmp_path / "s"), "--grid", grid_id)
        assert done.exit_code == 2 and done.output.count("\n") == 1, done.output
        assert words in done.output
    assert not (tmp_path / "s").exists()


def test_the_deciding_comparison_is_the_weakest_support_or_the_clearest_contradiction() -> None:
    def comparison(label, verdict, p):
        return {"label": label, "verdict": verdict, "decides": True, "ratio": 0.9, "low": 0.8,
                "high": 1.0, "n": 6, "n_unit": "configs", "p_adjusted": p}

    document = {"claims": [
        {"number": 1, "statement": "s", "verdict": "supported",
         "comparisons": [comparison("strong", "supported", 0.001),
                         comparison("weak", "supported", 0.04)]},
        {"number": 2, "statement": "t", "verdict": "contradicted",
         "comparisons": [comparison("faint", "contradicted", 0.03),
                         comparison("clear", "contradicted", 0.001),
                         comparison("other", "inconclusive", 0.5)]},
        {"number": 3, "statement": "u", "verdict": "not tested", "comparisons": []},
    ]}  # fmt: skip
    rows = verdicts_markdown(document, heading="H").splitlines()[4:7]
    assert [row.split(" | ")[2] for row in rows] == ["weak", "clear", "–"]
    assert rows[0].endswith("| 0.900 (0.800 – 1.000) | 6 configs | 0.04 |")
    assert rows[2].endswith("| – | – | – | – |")
