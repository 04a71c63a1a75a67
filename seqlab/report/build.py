"""A grid's report as data: pages, figures and claims rendered from the frames read for it.

Pure: :func:`render_report` turns a grid's frames into the files of its report and the
record of its claims. The shell (``seqlab.runners.report.build_report``, the one entry
point of the CLI and the flow) reads the frames, writes the files and records the build.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from seqlab.report.artifacts import ReportSummary, summarise_report
from seqlab.report.claims import claims_document, claims_frame, claims_summary
from seqlab.report.content import assemble_content
from seqlab.report.figures import FigurePNG, forecast_figure, loss_figures, ratio_figure
from seqlab.report.html import render_html
from seqlab.report.markdown import render_markdown
from seqlab.report.output import FIGURE_DIR
from seqlab.report.track_record import TRACK_FIGURE, running_ratio_png


@dataclass(frozen=True)
class ReportBuild:
    """Where a build put its files, what the claims came to, and what its artifacts show."""

    report_id: str
    grid_id: str
    out_dir: Path
    html_path: Path
    markdown_path: Path
    figures: list[Path]
    claims: dict[str, str]  # claim number -> verdict
    summary: ReportSummary
    html_bytes: int
    seconds: float

    def to_dict(self) -> dict:
        """JSON-able summary (paths as strings, the artifacts' summary left out)."""
        data = asdict(self)
        data.pop("summary")
        return {k: (str(v) if isinstance(v, Path) else [str(p) for p in v] if k == "figures" else v)
                for k, v in data.items()}


def draw_figures(content) -> list[FigurePNG]:
    figures = loss_figures(content.epochs) if content.epochs.height else []
    figures += [f for f in (ratio_figure(content.leaderboard), forecast_figure(content.forecasts)) if f]
    track = running_ratio_png(content.track_running)
    if track is not None:
        figures.append(FigurePNG(TRACK_FIGURE, "Running RMSE ratio against persistence", track))
    return figures


@dataclass(frozen=True)
class RenderedReport:
    """A report's files (relative path -> bytes) and what the build records about them."""

    files: dict[str, bytes]
    summary: ReportSummary
    claims: dict[str, str]  # claim number -> verdict
    claims_frame: pl.DataFrame
    n_runs: int
    html_bytes: int


def render_report(grid: dict, frames: dict, *, grid_id: str, built_at: datetime) -> RenderedReport:
    """Every file of a grid's report: ``index.html`` (self-contained, works offline),
    ``report.md`` with ``figures/*.png`` beside it and ``claims.json`` (the verdicts,
    machine-readable); the summary is what the flows' artifacts show."""
    content = assemble_content(grid, frames, built_at)
    figures = draw_figures(content)
    links = [(f"{FIGURE_DIR}/{f.name}", f.caption) for f in figures]
    html = render_html(content, links)
    document = claims_document(content.claims, left_out=content.claims_left_out,
                               divergence=content.divergence) | {"grid_id": grid_id}
    files = {f"{FIGURE_DIR}/{f.name}": f.png for f in figures} | {
        "index.html": html.encode("utf-8"),
        "report.md": render_markdown(content, figures, FIGURE_DIR).encode("utf-8"),
        "claims.json": (json.dumps(document, indent=1, allow_nan=False) + "\n").encode("utf-8"),
    }
    return RenderedReport(
        files=files, summary=summarise_report(content), claims=claims_summary(content.claims),
        claims_frame=claims_frame(content.claims), n_runs=content.runs.height,
        html_bytes=len(html.encode("utf-8")),
    )
