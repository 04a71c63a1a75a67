"""A report build never harms files seqlab did not write (issue: --out deleted user files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqlab.cli import app
from seqlab.report.output import MANIFEST, ReportOutputError, write_report_files
from seqlab.warehouse.runs import start_grid, store_run_results
from tests.report.test_report_views import frames_for, run_row

PNG = b"\x89PNG\r\n\x1a\nfake"


def report_files(*figures: str) -> dict[str, bytes]:
    return {"index.html": b"<html>", "report.md": b"# r", "claims.json": b"{}",
            **{f"figures/{name}": PNG for name in figures}}


def test_a_rebuild_removes_only_its_own_stale_figures(tmp_path: Path) -> None:
    out = tmp_path / "report"
    write_report_files(out, report_files("a.png", "b.png"))
    (out / "figures" / "my_plot.png").write_bytes(b"mine")
    (out / "notes.txt").write_text("mine")
    write_report_files(out, report_files("a.png"))
    assert not (out / "figures" / "b.png").exists()  # drawn last time, not this time
    assert (out / "figures" / "my_plot.png").read_bytes() == b"mine"
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / MANIFEST).read_text())["files"] == sorted(report_files("a.png"))


def test_a_folder_of_the_users_is_refused_untouched(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    (out / "figures").mkdir(parents=True)
    (out / "index.html").write_text("my page")
    (out / "figures" / "my_plot.png").write_bytes(b"mine")
    (out / "thesis.tex").write_text("mine")
    with pytest.raises(ReportOutputError, match="holds files seqlab did not write.*thesis.tex"):
        write_report_files(out, report_files("a.png"))
    assert (out / "index.html").read_text() == "my page"
    assert (out / "figures" / "my_plot.png").read_bytes() == b"mine"


def test_links_are_never_written_through(tmp_path: Path) -> None:
    out = tmp_path / "report"
    write_report_files(out, report_files("forecasts.png"))
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    link = out / "figures" / "forecasts.png"
    link.unlink()
    link.symlink_to(precious)
    with pytest.raises(ReportOutputError, match="symbolic link"):
        write_report_files(out, report_files("forecasts.png"))
    assert precious.read_text() == "keep me"


def test_out_naming_a_file_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("mine")
    with pytest.raises(ReportOutputError, match="is not a folder"):
        write_report_files(target, report_files())
    assert target.read_text() == "mine"


def test_seqlab_report_refuses_with_one_line_and_keeps_the_users_files(tmp_path: Path) -> None:
    warehouse = tmp_path / "wh.duckdb"
    start_grid(warehouse, grid_id="g1", symbol="ETH", preset=None, spec={}, spec_key="k",
               data_version="v1", code_version="c1", dispatch="local", n_configs=1)
    store_run_results(warehouse, "g1", frames_for([run_row("r1", "g1")], {"r1": [0.5, 0.4]}))
    runner = CliRunner()
    out = tmp_path / "out"
    built = runner.invoke(app, ["report", "--warehouse", str(warehouse), "--out", str(out)])
    assert built.exit_code == 0, built.output
    assert (out / "claims.json").is_file() and (out / "index.html").is_file()
    (out / "figures" / "my_plot.png").write_bytes(b"mine")
    again = runner.invoke(app, ["report", "--warehouse", str(warehouse), "--out", str(out)])
    assert again.exit_code == 0 and (out / "figures" / "my_plot.png").read_bytes() == b"mine"
    a_file = tmp_path / "file.txt"
    a_file.write_text("mine")
    refused = runner.invoke(app, ["report", "--warehouse", str(warehouse), "--out", str(a_file)])
    assert refused.exit_code != 0 and "is not a folder" in refused.output
    assert "Traceback" not in refused.output and a_file.read_text() == "mine"
