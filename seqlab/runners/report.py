"""Build a grid's report from the warehouse alone: the one entry point for CLI and flow.

The shell around the pure report core: read the frames (seqlab.warehouse.reports), render
them (seqlab.report.build), write ``index.html``, ``report.md``, ``claims.json`` and
``figures/*.png`` into ``out_dir``, and record the build and its claim verdicts.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import seqlab
from seqlab.report.artifacts import LEADERBOARD_KEY as LEADERBOARD_KEY
from seqlab.report.artifacts import REPORT_KEY as REPORT_KEY
from seqlab.report.artifacts import render_results_markdown, report_url
from seqlab.report.build import ReportBuild, render_report
from seqlab.report.output import FIGURE_DIR, write_report_files
from seqlab.report.validations import render_validations_text
from seqlab.warehouse import WarehouseMissing
from seqlab.warehouse.clock import utc_now
from seqlab.warehouse.reports import (
    ReportRecord,
    latest_grid_id,
    load_report_inputs,
    record_report,
)
from seqlab.warehouse.validations import load_validations


def build_report(warehouse: Path, *, grid_id: str | None = None, out_dir: Path,
                 timeout_s: float = 10.0) -> ReportBuild:
    """Rebuild the report of ``grid_id`` (the latest grid when None) into ``out_dir``.

    Records the build in the ``reports`` table with its claim comparisons in
    ``claim_results``. Raises WarehouseQueryError when the grid is not in the warehouse.
    ``timeout_s`` bounds each wait for another process's lock.
    """
    started = time.perf_counter()
    warehouse, out_dir = Path(warehouse), Path(out_dir)
    if not warehouse.exists():
        raise WarehouseMissing(warehouse)
    grid_id = grid_id or latest_grid_id(warehouse, timeout_s=timeout_s)
    inputs = load_report_inputs(warehouse, grid_id, timeout_s=timeout_s)
    built_at = utc_now()
    rendered = render_report(inputs.grid, inputs.frames, grid_id=grid_id, built_at=built_at)
    html_path, markdown_path = out_dir / "index.html", out_dir / "report.md"
    written = write_report_files(out_dir, rendered.files)
    figure_paths = [p for p in written if p.parent.name == FIGURE_DIR]
    report_id = f"{built_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    seconds = time.perf_counter() - started
    record_report(
        warehouse,
        ReportRecord(
            report_id=report_id, grid_id=grid_id, out_dir=str(out_dir.resolve()),
            html_path=str(html_path.resolve()), markdown_path=str(markdown_path.resolve()),
            figures=[str(p.resolve()) for p in figure_paths], n_runs=rendered.n_runs,
            claims_summary=rendered.claims, html_bytes=rendered.html_bytes,
            seconds=round(seconds, 3), seqlab_version=seqlab.__version__, built_at=built_at,
        ),
        rendered.claims_frame,
        timeout_s=timeout_s,
    )  # fmt: skip
    return ReportBuild(
        report_id=report_id, grid_id=grid_id, out_dir=out_dir, html_path=html_path,
        markdown_path=markdown_path, figures=figure_paths, claims=rendered.claims,
        summary=rendered.summary, html_bytes=rendered.html_bytes,
        seconds=round(seconds, 3),
    )  # fmt: skip


def report_artifacts(built: ReportBuild, *, served_root: Path,
                     base_url: str | None = None) -> tuple[list[dict], str]:
    """What a flow publishes about ``built``: the leaderboard rows (table artifact
    ``LEADERBOARD_KEY``) and the verdicts with the report's location (markdown artifact
    ``REPORT_KEY``), linked as ``base_url/<path under served_root>`` where ``base_url`` is set."""
    url = report_url(base_url, served_root, built.html_path)
    markdown = render_results_markdown(built.summary, html_path=built.html_path.resolve(),
                                       markdown_path=built.markdown_path.resolve(), html_url=url)
    return list(built.summary.leaderboard), markdown


def validations_text(warehouse: Path, symbol: str | None = None, *, timeout_s: float = 10.0) -> str:
    """Each symbol's (or ``symbol``'s) latest validation as plain text: the gate, every
    expectation with pass/fail and its observed value; readable offline, unlike GX's docs."""
    if not Path(warehouse).exists():
        raise WarehouseMissing(warehouse)
    return render_validations_text(load_validations(warehouse, symbol, timeout_s=timeout_s))
