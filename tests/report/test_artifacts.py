"""The artifacts' renderer: leaderboard rows, the report's link and the verdicts text."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from seqlab.report.artifacts import (
    ClaimVerdict,
    ReportSummary,
    leaderboard_rows,
    render_results_markdown,
    report_url,
)


def test_leaderboard_rows_keep_the_view_order_and_turn_nan_into_empty_cells() -> None:
    frame = pl.DataFrame({
        "rank": [1, 2], "cell": ["gru", "rnn"], "depth": [1, 2], "norm": ["none", "layer"],
        "feature_set": ["close", "ohlcv"], "test_rmse_usd": [101.23456, float("nan")],
        "baseline_rmse_usd": [100.0, 100.0], "rmse_ratio": [1.0123456, None], "n_runs": [3, 3],
    })
    assert leaderboard_rows(frame) == [
        {"rank": 1, "cell": "gru", "depth": 1, "norm": "none", "feature_set": "close",
         "test_rmse_usd": 101.23, "persistence_rmse_usd": 100.0, "rmse_ratio": 1.0123},
        {"rank": 2, "cell": "rnn", "depth": 2, "norm": "layer", "feature_set": "ohlcv",
         "test_rmse_usd": None, "persistence_rmse_usd": 100.0, "rmse_ratio": None},
    ]
    assert leaderboard_rows(frame.clear()) == []


def test_report_url_is_relative_to_the_served_folder(tmp_path: Path) -> None:
    page = tmp_path / "out" / "reports" / "g1" / "index.html"
    assert report_url("http://h:8000/", tmp_path / "out", page) == "http://h:8000/reports/g1/index.html"
    assert report_url(None, tmp_path / "out", page) is None
    assert report_url("", tmp_path / "out", page) is None
    assert report_url("http://h:8000", tmp_path / "elsewhere", page) is None  # not served there


def test_markdown_names_each_verdict_the_path_and_a_link_only_when_served(tmp_path: Path) -> None:
    summary = ReportSummary(
        grid_id="g1", symbol="ETH-SYNTHETIC", synthetic=True, headline=("Best: gru.",),
        claims=(ClaimVerdict(1, "Close beats all | always", "supported"),
                ClaimVerdict(6, "Models beat persistence", "not tested", "no test days")),
        leaderboard=({"rank": 1},),
    )
    html, md = tmp_path / "index.html", tmp_path / "report.md"
    text = render_results_markdown(summary, html_path=html, markdown_path=md)
    assert "SYNTHETIC" in text and "- Best: gru." in text
    assert "| 1 | **supported** | Close beats all / always |" in text
    assert "| 6 | **not tested** | Models beat persistence (no test days) |" in text
    assert f"`{html}`" in text and f"`{md}`" in text and "open it" not in text
    linked = render_results_markdown(summary, html_path=html, markdown_path=md,
                                     html_url="http://h/reports/g1/index.html")
    assert "[http://h/reports/g1/index.html](http://h/reports/g1/index.html)" in linked


def test_the_artifact_prints_each_claims_operational_test(tmp_path: Path) -> None:
    from seqlab.report.protocol import CLAIM_TESTS

    line = CLAIM_TESTS[3].one_line()
    summary = ReportSummary(
        grid_id="g1", symbol="ETH", synthetic=False, headline=(),
        claims=(ClaimVerdict(3, CLAIM_TESTS[3].statement, "not tested", "", line),),
        leaderboard=(),
    )
    text = render_results_markdown(summary, html_path=tmp_path / "i.html",
                                   markdown_path=tmp_path / "r.md")
    assert "## How each claim is tested" in text and f"- {line}" in text
