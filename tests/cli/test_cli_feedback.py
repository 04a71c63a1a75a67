"""`seqlab run` answers fast: bad settings before anything runs, a reused grid without Prefect.

Issue 15: a bad grid parameter was refused only after Prefect started and the data was
ingested again; a grid whose configs were all trained took 41-76 s and made a new report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqlab import cli
from seqlab.config import Settings
from seqlab.grid import GridParams, resolve_spec
from seqlab.runners.grid import run_grid
from seqlab.runners.ingest import IngestOptions, ingest_source
from seqlab.sample import write_sample_csv
from seqlab.warehouse import query

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--preset", "tiny", "--epochs", "1", "--lookback", "10", "--symbol", "ETH-SYNTHETIC"]


def _env(tmp_path: Path) -> dict:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    for name in ("SEQLAB_WAREHOUSE", "SEQLAB_OUTPUT_DIR", "PREFECT_API_URL"):
        env.pop(name, None)
    return env


def test_a_bad_cell_is_refused_before_ingest_or_prefect(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    ingest_source(str(write_sample_csv(tmp_path / "sample")),
                  IngestOptions(symbol="ETH-SYNTHETIC", warehouse=warehouse, docs_dir=tmp_path / "d"))
    before = query(warehouse, "SELECT count(*) AS n FROM ingestions")["n"][0]
    script = Path(sys.executable).with_name("seqlab")
    started = time.monotonic()
    done = subprocess.run(
        [str(script), "run", "--cells", "rnn,transformer", "--warehouse", str(warehouse),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=_env(tmp_path))
    seconds = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert "unknown cells ['transformer']; allowed: rnn, lstm, gru" in done.stderr
    assert "ingesting" not in done.stderr and "Prefect" not in done.stderr
    # No server start, no ingest, no torch: Python, typer and pydantic (1.2-1.8 s on 2 cores
    # at load 6; with torch it was 10-13 s there). The bound leaves room for a loaded machine.
    assert seconds < 6.0, seconds
    assert not (tmp_path / "prefect").exists()  # Prefect never ran: it makes its home first
    assert query(warehouse, "SELECT count(*) AS n FROM ingestions")["n"][0] == before


def test_a_refused_setting_loads_neither_torch_nor_polars():
    """The refusal's time is Python, typer and pydantic: whatever the machine's load, nothing
    heavy is imported before the settings are checked."""
    program = ("import sys\n"
               "from seqlab.cli import app\n"
               "try:\n"
               "    app(['run', '--epochs', '-1'])\n"
               "except SystemExit as exit:\n"
               "    assert exit.code == 2, exit.code\n"
               "print(sorted({'torch', 'polars', 'duckdb', 'prefect'} & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]" and "epochs must be > 0, got -1" in done.stderr


@pytest.mark.parametrize(("given", "seeds"), [("0", [0]), ("3", [3]), ("0,1,2", [0, 1, 2])])
def test_seeds_are_a_list_and_feature_sets_one_name(monkeypatch, tmp_path, given, seeds):
    seen = {}

    def stop(data, spec, *rest, **options):
        seen["spec"] = spec
        raise SystemExit(7)

    from seqlab.runtime import job

    monkeypatch.setattr(job, "ingest_and_plan", stop)
    done = CliRunner().invoke(cli.app, ["run", "--seeds", given, "--feature-sets", "all",
                                        "--out", str(tmp_path)])
    assert done.exit_code == 7, done.output
    assert list(seen["spec"].seeds) == seeds and seen["spec"].feature_sets == ("all",)
    old_name = CliRunner().invoke(cli.app, ["run", "--features", "close", "--out", str(tmp_path)])
    assert old_name.exit_code == 7 and seen["spec"].feature_sets == ("close",)


def test_a_list_that_is_not_comma_separated_is_refused_naming_its_flag(tmp_path):
    done = CliRunner().invoke(cli.app, ["run", "--seeds", "0;1", "--out", str(tmp_path)])
    assert done.exit_code == 2
    assert "--seeds takes comma-separated integers (e.g. --seeds 0,1,2), got '0;1'" in done.output


def test_help_has_no_type_noise():
    shown = CliRunner().invoke(cli.app, ["run", "--help"]).output
    assert "<" not in shown and "--feature-sets" in shown and "--seeds LIST" in shown
    for command in ("train", "predict", "query", "report", "ingest"):
        assert "<bool>" not in CliRunner().invoke(cli.app, [command, "--help"]).output
    assert "--features" not in shown.replace("--feature-sets", "")


def test_a_grid_with_nothing_to_train_skips_prefect_and_reuses_its_report(monkeypatch, tmp_path):
    settings = Settings(tmp_path / "w.duckdb", tmp_path / "out")
    sample = write_sample_csv(tmp_path / "sample")
    ingest_source(str(sample), IngestOptions(symbol="ETH-SYNTHETIC", warehouse=settings.warehouse,
                                             docs_dir=tmp_path / "docs"))
    first = run_grid(resolve_spec(GridParams(preset="tiny", epochs=1, lookback=10)), settings,
                     symbol="ETH-SYNTHETIC", preset="tiny", log=lambda line: None)
    assert first.trained == 3

    def no_training(*args, **kwargs):
        raise AssertionError("the reuse path trained")

    import seqlab.runners.host
    import seqlab.runtime.watchdog

    monkeypatch.setattr(seqlab.runners.host, "train_placed_pack", no_training)
    monkeypatch.setattr(seqlab.runtime.watchdog, "start_watched_server", no_training)
    args = ["run", "--data", str(sample), *TINY, "--warehouse", str(settings.warehouse),
            "--out", str(settings.output_dir)]
    rerun = CliRunner().invoke(cli.app, args)
    assert rerun.exit_code == 0, rerun.output
    assert "0 configs to train, 3 reused" in rerun.output
    assert f"nothing to train: 3 reused (grid {first.grid_id})" in rerun.output
    report = (settings.output_dir / "reports" / first.grid_id / "index.html").resolve()
    assert f"report: {report}" in rerun.output and report.is_file()
    assert "starting Prefect" not in rerun.output

    again = CliRunner().invoke(cli.app, args)  # the report exists now: found, not rebuilt
    assert again.exit_code == 0 and f"report: {report}" in again.output
    assert query(settings.warehouse, "SELECT count(*) AS n FROM grids")["n"][0] == 1
    assert query(settings.warehouse, "SELECT count(*) AS n FROM reports")["n"][0] == 1
    # The printed query is this grid's runs, with symbol and feature set, and it answers.
    sql = again.output.split("query:  ", 1)[1].split(" query --warehouse ", 1)[1]
    sql = sql.split(" ", 1)[1].strip().strip('"')
    rows = query(settings.warehouse, sql)
    assert rows.height == 3 and set(rows["symbol"]) == {"ETH-SYNTHETIC"}
    assert "feature_set" in rows.columns

    checked = CliRunner().invoke(cli.app, ["validations", "--warehouse", str(settings.warehouse)])
    assert checked.exit_code == 0 and "gate passed" in checked.output
    monkeypatch.setenv("SEQLAB_OUTPUT_DIR", str(settings.output_dir))
    rebuilt = CliRunner().invoke(cli.app, ["report", "--warehouse", str(settings.warehouse)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert str(report) in rebuilt.output  # its grid's own folder, never reports/index.html
    assert not (settings.output_dir / "reports" / "index.html").exists()
    # A one-off report elsewhere is not this output folder's: the next run points here again.
    oneoff = CliRunner().invoke(cli.app, ["report", "--warehouse", str(settings.warehouse),
                                          "--out", str(tmp_path / "oneoff")])
    assert oneoff.exit_code == 0, oneoff.output
    after = CliRunner().invoke(cli.app, args)
    assert after.exit_code == 0 and f"report: {report}" in after.output, after.output


def test_a_grid_sharing_trained_runs_with_others_links_them_without_prefect(monkeypatch, tmp_path):
    """Every run trained before, but by two different grids: a new grid links them all."""
    settings = Settings(tmp_path / "w.duckdb", tmp_path / "out")
    sample = write_sample_csv(tmp_path / "sample")
    ingest_source(str(sample), IngestOptions(symbol="ETH-SYNTHETIC", warehouse=settings.warehouse,
                                             docs_dir=tmp_path / "docs"))
    for cells in (["rnn"], ["lstm", "gru"]):
        run_grid(resolve_spec(GridParams(preset="tiny", cells=cells, epochs=1, lookback=10)),
                 settings, symbol="ETH-SYNTHETIC", preset="tiny", log=lambda line: None)
    import seqlab.runtime.watchdog

    monkeypatch.setattr(seqlab.runtime.watchdog, "start_watched_server",
                        lambda: (_ for _ in ()).throw(AssertionError("Prefect started")))
    rerun = CliRunner().invoke(cli.app, ["run", "--data", str(sample), *TINY, "--warehouse",
                                         str(settings.warehouse), "--out", str(settings.output_dir)])
    assert rerun.exit_code == 0, rerun.output
    grid_id = rerun.output.split("(grid ", 1)[1].split(")", 1)[0]
    linked = query(settings.warehouse, f"SELECT count(*) AS n FROM report_runs WHERE grid_id = '{grid_id}'")
    assert linked["n"][0] == 3
    assert (settings.output_dir / "reports" / grid_id / "index.html").is_file()


def test_pack_mode_and_size_are_checked_before_anything_runs(monkeypatch, tmp_path):
    reached = []
    from seqlab.runtime import job

    monkeypatch.setattr(job, "ingest_and_plan",
                        lambda *args, **options: reached.append(1) or sys.exit(7))
    bad = CliRunner().invoke(cli.app, ["run", "--pack-mode", "vmap", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "unknown pack mode 'vmap'; allowed: streams, batched, fused" in bad.output
    negative = CliRunner().invoke(cli.app, ["run", "--pack-size", "-1", "--out", str(tmp_path)])
    assert negative.exit_code == 2 and "--pack-size must be >= 0" in negative.output
    assert not reached
    fused = CliRunner().invoke(cli.app, ["run", "--pack-mode", "fused", "--pack-size", "8",
                                         "--out", str(tmp_path)])
    assert fused.exit_code == 7, fused.output
