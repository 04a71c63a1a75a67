"""train-grid and report show their results in Prefect: the leaderboard as a table artifact
equal to the warehouse's ``leaderboard`` view, the verdicts and the report's location as a
markdown artifact (a link only where ``SEQLAB_REPORT_URL`` is set, never ``file://``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqlab.runners.report import LEADERBOARD_KEY, REPORT_KEY
from seqlab.warehouse import query
from tests.conftest import COINCODEX

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TWO_CONFIGS = dict(cells=["rnn", "gru"], depths=[1], norms=["none"], feature_sets=["close"],
                   seeds=[0], epochs=2, hidden=4, lookback=10)
SERVED_AT = "http://reports.example:8000/"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, prefect_harness):
    folder = tmp_path_factory.mktemp("artifacts")
    return {"warehouse": str(folder / "w.duckdb"), "output_dir": str(folder / "out")}


@pytest.fixture(scope="module")
def grid_run(workspace):
    """One train-grid run with SEQLAB_REPORT_URL set: (its flow run id, its result)."""
    from seqlab.flows.train import train_grid

    with pytest.MonkeyPatch.context() as env:
        env.setenv("SEQLAB_REPORT_URL", SERVED_AT)
        state = train_grid(data=str(COINCODEX), symbol="ETH", grid=TWO_CONFIGS,
                           return_state=True, **workspace)
    return state.state_details.flow_run_id, state.result()


def artifacts_of(flow_run_id) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a for a in found if a.key}


def leaderboard_view(warehouse: str, grid_id: str) -> list[dict]:
    view = query(warehouse, f"""
        SELECT rank, cell, depth, norm, feature_set, test_rmse_usd,
            baseline_rmse_usd AS persistence_rmse_usd, rmse_ratio
        FROM leaderboard WHERE grid_id = '{grid_id}'
        ORDER BY rank, cell, depth, norm, feature_set""")
    return [{**row, "test_rmse_usd": round(row["test_rmse_usd"], 2),
             "persistence_rmse_usd": round(row["persistence_rmse_usd"], 2),
             "rmse_ratio": round(row["rmse_ratio"], 4)} for row in view.iter_rows(named=True)]


def assert_names_every_verdict(markdown: str, report: dict) -> None:
    claims = json.loads(Path(report["html_path"]).with_name("claims.json").read_text())["claims"]
    assert len(claims) == 6
    for claim in claims:
        assert f"| {claim['number']} | **{claim['verdict']}** | {claim['statement']}" in markdown


def test_train_grid_publishes_the_leaderboard_and_the_verdicts(grid_run, workspace):
    flow_run_id, result = grid_run
    grid_id, report = result["grid_id"], result["report"]
    assert result["status"] == "completed" and report["grid_id"] == grid_id
    html = Path(report["html_path"])
    assert html == Path(workspace["output_dir"]) / "reports" / grid_id / "index.html"
    assert html.is_file()

    artifacts = artifacts_of(flow_run_id)
    assert {LEADERBOARD_KEY, REPORT_KEY} <= set(artifacts)
    assert artifacts[LEADERBOARD_KEY].type == "table"
    rows = json.loads(artifacts[LEADERBOARD_KEY].data)
    assert len(rows) == 2
    assert rows == leaderboard_view(workspace["warehouse"], grid_id)

    markdown = artifacts[REPORT_KEY].data
    assert artifacts[REPORT_KEY].type == "markdown"
    assert f"Report: grid {grid_id}" in markdown
    assert_names_every_verdict(markdown, report)
    assert f"`{html.resolve()}`" in markdown  # the path, always
    link = f"http://reports.example:8000/reports/{grid_id}/index.html"
    assert f"[{link}]({link})" in markdown
    assert "file://" not in markdown


def test_report_flow_republishes_without_a_link_when_no_url_is_set(grid_run, workspace, monkeypatch):
    from seqlab.flows.report import build_grid_report

    monkeypatch.delenv("SEQLAB_REPORT_URL", raising=False)
    _, result = grid_run
    state = build_grid_report(result["grid_id"], return_state=True, **workspace)
    rebuilt = state.result()
    artifacts = artifacts_of(state.state_details.flow_run_id)
    assert json.loads(artifacts[LEADERBOARD_KEY].data) == leaderboard_view(
        workspace["warehouse"], result["grid_id"])
    markdown = artifacts[REPORT_KEY].data
    assert_names_every_verdict(markdown, rebuilt)
    assert f"`{Path(rebuilt['html_path']).resolve()}`" in markdown
    assert "http" not in markdown.replace("http.server", "") and "file://" not in markdown
    assert rebuilt["artifacts"][REPORT_KEY] == str(artifacts[REPORT_KEY].id)
