"""The report flow on a temporary Prefect server: same build as the CLI, plus the artifact.

The grid here is constructed (no training), with no ingestion or validation recorded, so
this also shows a report on a warehouse that lacks its data history still builds and
says what is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from seqlab.warehouse import query
from seqlab.warehouse.runs import start_grid, store_run_results
from tests.report.test_report_views import SMOOTH, SPIKY, frames_for, run_row


@pytest.fixture()
def constructed_warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "wh.duckdb"
    start_grid(path, grid_id="flow-grid", symbol="ETH-SYNTHETIC", preset=None,
               spec={"cells": ["gru"], "epochs": 10}, spec_key="k", data_version="v1",
               code_version="c1", dispatch="local", n_configs=2)
    runs = [run_row("a", "flow-grid"), run_row("b", "flow-grid", norm="layer", test_rmse_usd=80.0)]
    store_run_results(path, "flow-grid", frames_for(runs, {"a": SMOOTH, "b": SPIKY}))
    return path


def test_report_flow_writes_files_records_build_and_publishes_artifact(
    prefect_harness, constructed_warehouse: Path, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from seqlab.flows.report import build_grid_report
    from seqlab.runners.report import REPORT_KEY

    result = build_grid_report(warehouse=str(constructed_warehouse),
                               output_dir=str(tmp_path / "out"))  # latest grid
    assert result["grid_id"] == "flow-grid"
    html = Path(result["html_path"])
    assert html.parent == tmp_path / "out" / "reports" / "flow-grid"
    assert html.is_file() and Path(result["markdown_path"]).is_file()
    page = html.read_text()
    assert 'id="synthetic-warning"' in page
    assert "No validation of data_version v1 is recorded." in page
    recorded = query(constructed_warehouse, "SELECT * FROM reports")
    assert recorded["report_id"].to_list() == [result["report_id"]]
    assert query(constructed_warehouse, "SELECT count(*) n FROM claims")["n"][0] > 0

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[REPORT_KEY]))
        )
    # Other flow tests in this session publish reports under the same key: take this grid's.
    ours = [a.data for a in artifacts if "Report: grid flow-grid" in (a.data or "")]
    assert ours, "no report artifact published for flow-grid"
    markdown = ours[-1]
    assert "Report: grid flow-grid" in markdown and "SYNTHETIC" in markdown
    assert f"`{html.resolve()}`" in markdown and "file://" not in markdown  # a path, not a link
    assert "| The models beat the naive persistence baseline" in markdown  # the verdicts


def test_a_grid_whose_runs_all_failed_still_gets_a_report(tmp_path: Path) -> None:
    from seqlab.runners.report import build_report

    path = tmp_path / "wh.duckdb"
    start_grid(path, grid_id="failed-grid", symbol="ETH", preset=None, spec={}, spec_key="k",
               data_version="v1", code_version="c1", dispatch="local", n_configs=1)
    failed = run_row("x", "failed-grid", status="failed", error="RuntimeError: boom",
                     best_test_loss=None, final_test_loss=None, test_rmse_usd=None,
                     test_mae_usd=None, baseline_rmse_usd=None, baseline_mae_usd=None)
    frames = frames_for([failed], {})
    store_run_results(path, "failed-grid", {**frames, "predictions": frames["predictions"].clear()})
    built = build_report(path, grid_id="failed-grid", out_dir=tmp_path / "report")
    page = built.html_path.read_text()
    assert "No run of this grid produced test metrics (all failed)." in page
    assert "No epoch metrics are stored for this grid." in page
    assert set(built.claims.values()) == {"not tested"}
    assert [p.name for p in built.figures] == []
