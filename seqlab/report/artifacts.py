"""What a flow run shows of a report in Prefect's UI: the leaderboard rows and the verdicts.

Pure: :func:`summarise_report` keeps what the artifacts need from a report's content;
:func:`leaderboard_rows` is the table artifact, :func:`render_results_markdown` the one
markdown artifact every flow publishes (``train-grid``, ``report``, and through them
``pipeline`` and ``retrain``). Where the pages lie is the shell's to say: a path always, a
link only where the report is served (``SEQLAB_REPORT_URL``), never a ``file://`` link,
which a browser refuses to open from an http page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from seqlab.report.content import ReportContent
from seqlab.report.narrative import headline

REPORT_KEY = "grid-report"  # the markdown artifact: verdicts and where the report lies
LEADERBOARD_KEY = "grid-leaderboard"  # the table artifact: the leaderboard against persistence

# (leaderboard view column, artifact column, decimals): the leaderboard against persistence.
LEADERBOARD_ARTIFACT_COLUMNS = (
    ("rank", "rank", None), ("cell", "cell", None), ("depth", "depth", None),
    ("norm", "norm", None), ("feature_set", "feature_set", None),
    ("test_rmse_usd", "test_rmse_usd", 2), ("baseline_rmse_usd", "persistence_rmse_usd", 2),
    ("rmse_ratio", "rmse_ratio", 4),
)  # fmt: skip


@dataclass(frozen=True)
class ClaimVerdict:
    number: int
    statement: str
    verdict: str
    note: str = ""
    operational_test: str = ""


@dataclass(frozen=True)
class ReportSummary:
    """The part of a report its artifacts show: a few sentences, the verdicts, the leaderboard."""

    grid_id: str
    symbol: str
    synthetic: bool
    headline: tuple[str, ...]
    claims: tuple[ClaimVerdict, ...]
    leaderboard: tuple[dict, ...]  # leaderboard_rows of the grid, ranked on validation


def _value(value, decimals: int | None):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None  # JSON has no NaN; the UI shows an empty cell
    return round(float(value), decimals) if decimals is not None else value


def leaderboard_rows(leaderboard: pl.DataFrame) -> list[dict]:
    """One row per config of the ``leaderboard`` view, in its order: rank on validation,
    the config, its mean test RMSE, persistence's on the same days and their ratio."""
    if leaderboard.is_empty():
        return []
    return [{name: _value(row[source], decimals)
             for source, name, decimals in LEADERBOARD_ARTIFACT_COLUMNS}
            for row in leaderboard.iter_rows(named=True)]


def summarise_report(content: ReportContent) -> ReportSummary:
    return ReportSummary(
        grid_id=content.grid_id, symbol=content.data.symbol, synthetic=content.data.synthetic,
        headline=tuple(headline(content)),
        claims=tuple(ClaimVerdict(c.number, c.statement, c.verdict.value, c.note,
                                  c.operational_test) for c in content.claims),
        leaderboard=tuple(leaderboard_rows(content.leaderboard)),
    )


def report_url(base_url: str | None, root: Path, page: Path) -> str | None:
    """``base_url/<page relative to root>`` where ``root`` is what ``base_url`` serves;
    None without a base or when the page lies outside ``root``."""
    if not base_url:
        return None
    try:
        relative = Path(page).resolve().relative_to(Path(root).resolve())
    except ValueError:
        return None
    return f"{base_url.rstrip('/')}/{relative.as_posix()}"


def render_results_markdown(summary: ReportSummary, *, html_path: Path, markdown_path: Path,
                            html_url: str | None = None) -> str:
    """The verdicts of the report's claims and where the report lies (and is served)."""
    lines = [f"# Report: grid {summary.grid_id}", ""]
    if summary.synthetic:
        lines += [f"**SYNTHETIC DATA** ({summary.symbol}): not real prices.", ""]
    lines += [*(f"- {line}" for line in summary.headline), ""]
    # The verdict before the statement: a narrow UI pane cuts the last column off.
    lines += ["## Verdicts", "", "| # | verdict | claim |", "|---:|---|---|"]
    lines += [f"| {c.number} | **{c.verdict}** | {c.statement.replace('|', '/')}"
              + (f" ({c.note.replace('|', '/')})" if c.note else "") + " |" for c in summary.claims]
    tests = [c for c in summary.claims if c.operational_test]
    if tests:
        lines += ["", "## How each claim is tested", ""]
        lines += [f"- {c.operational_test}" for c in tests]
    lines += ["", "## The report", ""]
    if html_url:
        lines += [f"- open it: [{html_url}]({html_url})"]
    lines += [f"- page: `{Path(html_path)}` (self-contained, works offline)",
              f"- markdown: `{Path(markdown_path)}`; verdicts as JSON: "
              f"`{Path(html_path).with_name('claims.json')}`", ""]
    if not html_url:
        lines += ["Set `SEQLAB_REPORT_URL` to the address serving the output folder "
                  "(e.g. `python -m http.server -d data/output`) for a link here.", ""]
    lines += [f"The leaderboard ({len(summary.leaderboard)} configs against persistence) is the "
              f"`{LEADERBOARD_KEY}` table artifact of this run."]
    return "\n".join(lines)
