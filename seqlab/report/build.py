"""Build a grid's report from the warehouse alone: the one entry point for CLI and flow.

The shell around the pure report core: read the frames (seqlab.warehouse.reports),
assemble content, draw figures, write ``index.html``, ``report.md`` and ``figures/*.png``
into ``out_dir``, and record the build and its claim verdicts in the warehouse.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import seqlab
from seqlab.report.claims import claims_document, claims_frame, claims_summary
from seqlab.report.content import assemble_content
from seqlab.report.figures import FigurePNG, forecast_figure, loss_figures, ratio_figure
from seqlab.report.html import render_html
from seqlab.report.markdown import render_artifact, render_markdown
from seqlab.report.output import FIGURE_DIR, write_report_files
from seqlab.warehouse import WarehouseMissing
from seqlab.warehouse.clock import utc_now
from seqlab.warehouse.reports import (
    ReportRecord,
    latest_grid_id,
    load_report_inputs,
    record_report,
)


@dataclass(frozen=True)
class ReportBuild:
    """Where a build put its files, what the claims came to, and the artifact text."""

    report_id: str
    grid_id: str
    out_dir: Path
    html_path: Path
    markdown_path: Path
    figures: list[Path]
    claims: dict[str, str]  # claim number -> verdict
    artifact_markdown: str
    html_bytes: int
    seconds: float

    def to_dict(self) -> dict:
        """JSON-able summary (paths as strings, artifact text left out)."""
        data = asdict(self)
        data.pop("artifact_markdown")
        return {k: (str(v) if isinstance(v, Path) else [str(p) for p in v] if k == "figures" else v)
                for k, v in data.items()}


def draw_figures(content) -> list[FigurePNG]:
    figures = loss_figures(content.epochs) if content.epochs.height else []
    figures += [f for f in (ratio_figure(content.leaderboard), forecast_figure(content.forecasts)) if f]
    return figures


def build_report(warehouse: Path, *, grid_id: str | None = None, out_dir: Path,
                 timeout_s: float = 10.0) -> ReportBuild:
    """Rebuild the report of ``grid_id`` (the latest grid when None) into ``out_dir``.

    Writes ``index.html`` (self-contained, works offline), ``report.md`` with
    ``figures/*.png`` beside it, ``claims.json`` (the verdicts, machine-readable), and records the build in the ``reports`` table with its
    claim comparisons in ``claim_results``. Raises WarehouseQueryError when the grid is
    not in the warehouse. ``timeout_s`` bounds each wait for another process's lock.
    """
    started = time.perf_counter()
    warehouse, out_dir = Path(warehouse), Path(out_dir)
    if not warehouse.exists():
        raise WarehouseMissing(warehouse)
    grid_id = grid_id or latest_grid_id(warehouse, timeout_s=timeout_s)
    inputs = load_report_inputs(warehouse, grid_id, timeout_s=timeout_s)
    built_at = utc_now()
    content = assemble_content(inputs.grid, inputs.frames, built_at)
    figures = draw_figures(content)
    html_path, markdown_path = out_dir / "index.html", out_dir / "report.md"
    links = [(f"{FIGURE_DIR}/{f.name}", f.caption) for f in figures]
    html = render_html(content, links)
    document = claims_document(content.claims) | {"grid_id": grid_id}
    files = {f"{FIGURE_DIR}/{f.name}": f.png for f in figures} | {
        "index.html": html.encode("utf-8"),
        "report.md": render_markdown(content, figures, FIGURE_DIR).encode("utf-8"),
        "claims.json": (json.dumps(document, indent=1, allow_nan=False) + "\n").encode("utf-8"),
    }
    written = write_report_files(out_dir, files)
    figure_paths = [p for p in written if p.parent.name == FIGURE_DIR]
    artifact = render_artifact(content, html_path.resolve().as_uri(),
                               markdown_path.resolve().as_uri())
    report_id = f"{built_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    summary = claims_summary(content.claims)
    html_bytes = len(html.encode("utf-8"))
    seconds = time.perf_counter() - started
    record_report(
        warehouse,
        ReportRecord(
            report_id=report_id, grid_id=grid_id, out_dir=str(out_dir.resolve()),
            html_path=str(html_path.resolve()), markdown_path=str(markdown_path.resolve()),
            figures=[str(p.resolve()) for p in figure_paths], n_runs=content.runs.height,
            claims_summary=summary, html_bytes=html_bytes, seconds=round(seconds, 3),
            seqlab_version=seqlab.__version__, built_at=built_at,
        ),
        claims_frame(content.claims),
        timeout_s=timeout_s,
    )  # fmt: skip
    return ReportBuild(
        report_id=report_id, grid_id=grid_id, out_dir=out_dir, html_path=html_path,
        markdown_path=markdown_path, figures=figure_paths, claims=summary,
        artifact_markdown=artifact, html_bytes=html_bytes, seconds=round(seconds, 3),
    )  # fmt: skip
