"""Publish a finished grid as a study folder: the report core's files from the warehouse alone.

The shell around ``seqlab.report.publish``: read the grid's report inputs, render its
report, add the Parquet exports, verdict table and provenance, and write them into a folder
seqlab owns (``seqlab.report.output``). Reads only: the warehouse is not written.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import polars as pl

import seqlab
from seqlab.ingest.fetch import redact_url
from seqlab.report.build import render_report
from seqlab.report.output import previous_files, write_report_files
from seqlab.report.publish import (
    Provenance,
    check_publishable,
    publication_files,
    shareable_frames,
)
from seqlab.warehouse import WarehouseMissing
from seqlab.warehouse.clock import utc_now
from seqlab.warehouse.publication import latest_study_grid_id
from seqlab.warehouse.reports import load_report_inputs


def without_credentials(frames: dict) -> dict:
    """URL sources stored by versions before redact_url, published without their secrets."""
    if "ingestions" not in frames:
        return frames
    source = pl.col("source")
    return {**frames, "ingestions": frames["ingestions"].with_columns(
        source=pl.when(source.str.contains("^https?://"))
        .then(source.map_elements(redact_url, return_dtype=pl.String)).otherwise(source))}


@dataclass(frozen=True)
class Publication:
    """Which grid went where, and each file written with its size in bytes."""

    grid_id: str
    out_dir: Path
    files: dict[str, int]


def _git(*args: str) -> str | None:
    """A git answer about the checkout seqlab runs from; None outside one or without git."""
    try:
        done = subprocess.run(["git", *args], cwd=Path(seqlab.__file__).parent,
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def provenance(code_version_now: str | None = None) -> Provenance:
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return Provenance(created_at=utc_now(), seqlab_version=seqlab.__version__,
                      git_commit=commit, git_dirty=None if status is None else bool(status),
                      code_version_now=code_version_now)


def publish_grid(warehouse: Path, *, out_dir: Path, grid_id: str | None = None,
                 code_version_now: str | None = None, timeout_s: float = 10.0) -> Publication:
    """Publish ``grid_id`` (the latest study grid when None or "latest") into ``out_dir``.

    Raises WarehouseQueryError for a grid not in the warehouse, PublishError for one not
    finished, and ReportOutputError, before anything is read, for a folder seqlab does not
    own. ``code_version_now`` is this checkout's training-code hash, recorded beside the
    grid's so a reader knows whether the commit named is the code that trained it.
    """
    warehouse, out_dir = Path(warehouse), Path(out_dir)
    if not warehouse.exists():
        raise WarehouseMissing(warehouse)
    previous_files(out_dir)  # refuse a user's folder at once, not after the render
    if grid_id in (None, "latest"):
        grid_id = latest_study_grid_id(warehouse, timeout_s=timeout_s)
    inputs = load_report_inputs(warehouse, grid_id, timeout_s=timeout_s)
    check_publishable(inputs.grid)
    made = provenance(code_version_now)
    frames = shareable_frames(without_credentials(inputs.frames))
    rendered = render_report(inputs.grid, frames, grid_id=grid_id, built_at=made.created_at)
    files = publication_files(inputs.grid, frames, rendered.files, made)
    write_report_files(out_dir, files)
    return Publication(grid_id, out_dir, {name: len(data) for name, data in files.items()})
