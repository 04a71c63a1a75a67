"""Validation results readable offline: the report's Validation gate table and the text view
show every expectation of the latest validation with its observed value and pass/fail,
without Great Expectations' data docs (which need a CDN), and link those docs as an extra."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqlab.runners.report import build_report, validations_text
from seqlab.warehouse import WarehouseMissing
from seqlab.warehouse.runs import start_grid, store_run_results
from seqlab.warehouse.validations import record_validation
from tests.report.test_report_views import SMOOTH, SPIKY, frames_for, run_row

LONG = "unexpected dates: " + ", ".join(f"2020-01-{d:02d}" for d in range(1, 29))  # > 160 chars
LATEST = [
    ("expect_column_values_to_be_unique(date)", "critical", True, "0 duplicates in 3,654 rows"),
    ("expect_column_values_to_be_between(close)", "critical", True, "min 0.43, max 4,831.35"),
    ("expect_daily_dates_without_gaps", "warning", False, LONG),
]


@pytest.fixture()
def validated_warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "wh.duckdb"
    start_grid(path, grid_id="g1", symbol="ETH", preset=None, spec={"cells": ["gru"], "epochs": 10},
               spec_key="k", data_version="v1", code_version="c1", dispatch="local", n_configs=2)
    runs = [run_row("a", "g1", symbol="ETH"), run_row("b", "g1", symbol="ETH", norm="layer")]
    store_run_results(path, "g1", frames_for(runs, {"a": SMOOTH, "b": SPIKY}))
    record_validation(path, symbol="ETH", data_version="v1", docs_path=None,
                      outcomes=[("expect_an_older_rule", "critical", False, "superseded")])
    record_validation(path, symbol="ETH", data_version="v1", outcomes=LATEST,
                      docs_path=str(tmp_path / "data_docs" / "ETH" / "index.html"))
    return path


def test_the_report_shows_every_expectation_with_observed_value_and_result(
    validated_warehouse: Path, tmp_path: Path
) -> None:
    built = build_report(validated_warehouse, grid_id="g1", out_dir=tmp_path / "report")
    page = built.html_path.read_text()
    gate = page.split('<table id="gate">')[1].split("</table>")[0]
    assert gate.count("<tr class=") == len(LATEST)  # the latest validation only
    assert "expect_an_older_rule" not in page
    for name, severity, success, observed in LATEST:
        row = gate.split(f"<td>{name}</td>")[1].split("</tr>")[0]
        assert f"<td>{severity}</td>" in row
        assert ("<td>passed</td>" if success else "<td>FAILED</td>") in row
        assert observed in row  # whole, not cut at 160 characters
    docs = (tmp_path / "data_docs" / "ETH" / "index.html").as_uri()
    assert f'href="{docs}"' in page  # GX's data docs, kept as an extra
    markdown = built.markdown_path.read_text()
    assert "| expect_daily_dates_without_gaps | warning | FAILED | " + LONG + " |" in markdown
    assert "| expect_column_values_to_be_unique(date) | critical | passed |" in markdown


def test_the_text_view_reads_the_latest_validation_of_each_symbol(validated_warehouse: Path) -> None:
    text = validations_text(validated_warehouse)
    assert text.startswith("ETH · data_version v1 · validated ")
    assert "gate passed: 2 of 2 critical held" in text
    assert "expect_an_older_rule" not in text
    for name, _, success, _ in LATEST:
        line = next(line for line in text.splitlines() if name in line)
        assert line.lstrip().startswith("pass" if success else "FAIL")
    assert "0 duplicates in 3,654 rows" in text and "unexpected dates: 2020-01-01" in text
    assert "GX data docs (styled only online):" in text
    assert validations_text(validated_warehouse, "BTC") == (
        "No validation is recorded (run `seqlab ingest` first).")


def test_the_text_view_names_a_missing_warehouse(tmp_path: Path) -> None:
    with pytest.raises(WarehouseMissing):
        validations_text(tmp_path / "nowhere.duckdb")
