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
    assert sorted(json.loads((out / MANIFEST).read_text())["files"]) == sorted(report_files("a.png"))


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


# --- issue 23: the manifest is not trusted, temp files are created exclusively -------------

def _small_grid_report(tmp_path: Path, out: Path):
    warehouse = tmp_path / "wh.duckdb"
    start_grid(warehouse, grid_id="g1", symbol="ETH", preset=None, spec={}, spec_key="k",
               data_version="v1", code_version="c1", dispatch="local", n_configs=1)
    store_run_results(warehouse, "g1", frames_for([run_row("r1", "g1")], {"r1": [0.5, 0.4]}))
    args = ["report", "--warehouse", str(warehouse), "--out", str(out)]
    built = CliRunner().invoke(app, args)
    assert built.exit_code == 0, built.output
    return args


def test_an_edited_manifest_deletes_nothing_outside_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = _small_grid_report(tmp_path, out)
    victim, absolute = tmp_path / "victim.txt", tmp_path / "elsewhere" / "absolute.txt"
    victim.write_text("keep")
    absolute.parent.mkdir()
    absolute.write_text("keep")
    manifest = out / MANIFEST
    document = json.loads(manifest.read_text())
    for name in ("../victim.txt", str(absolute)):
        document["files"][name] = "0" * 64
        manifest.write_text(json.dumps(document))
        refused = CliRunner().invoke(app, args)
        assert refused.exit_code == 2 and "not a file a report writes" in refused.output
        assert name in refused.output and "Traceback" not in refused.output
        del document["files"][name]
    assert victim.read_text() == "keep" and absolute.read_text() == "keep"


def test_a_listed_file_the_user_changed_is_neither_removed_nor_replaced(tmp_path: Path) -> None:
    out = tmp_path / "report"
    write_report_files(out, report_files("a.png", "b.png"))
    (out / "figures" / "b.png").write_bytes(b"my edit")  # listed, stale next time, but changed
    write_report_files(out, report_files("a.png"))
    assert (out / "figures" / "b.png").read_bytes() == b"my edit"
    (out / "report.md").write_text("my notes")  # listed and written again: refused
    with pytest.raises(ReportOutputError, match="report.md is not the file seqlab wrote"):
        write_report_files(out, report_files("a.png"))
    assert (out / "report.md").read_text() == "my notes"


def test_a_temp_file_linked_to_a_victim_is_never_written_through(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = _small_grid_report(tmp_path, out)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (out / ".report.md.tmp").symlink_to(victim)
    (out / "figures" / ".train_loss_close.png.tmp").symlink_to(victim)
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert victim.read_text() == "keep"
    assert not (out / "report.md").is_symlink() and (out / "report.md").read_text().startswith("#")
    assert not (out / ".report.md.tmp").exists() and not (out / ".report.md.tmp").is_symlink()


def test_a_killed_first_build_leaves_a_folder_the_next_build_owns(tmp_path: Path) -> None:
    out = tmp_path / "report"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / ".train_loss_close.png.tmp").write_bytes(b"half")  # before 0.x
    (out / ".index.html.k2j4h5g6.seqlab-tmp").write_bytes(b"half")
    write_report_files(out, report_files("a.png"))
    assert sorted(p.name for p in out.rglob(".*tmp")) == []
    # killed after the manifest and one file: the pending hash proves the file is seqlab's
    pending = json.loads((out / MANIFEST).read_text())["files"]
    (out / MANIFEST).write_text(json.dumps({"files": {}, "pending": pending}))
    write_report_files(out, report_files("b.png"))
    assert not (out / "figures" / "a.png").exists() and (out / "figures" / "b.png").exists()


def test_a_folder_holding_only_the_users_index_html_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("my site")
    with pytest.raises(ReportOutputError, match=r"holds files seqlab did not write \(index.html\)"):
        write_report_files(out, report_files("a.png"))
    assert (out / "index.html").read_text() == "my site"
