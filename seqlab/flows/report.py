"""report: rebuild a grid's comparison report from the warehouse and publish its artifacts."""

from __future__ import annotations

from prefect import flow

from seqlab.config import Settings
from seqlab.tasks.report import build_and_publish_report


@flow(name="report", log_prints=True)
def build_grid_report(
    grid_id: str | None = None, warehouse: str | None = None, output_dir: str | None = None
) -> dict:
    """Build the report of ``grid_id`` (latest grid when None) with the same code as
    ``seqlab report``, then publish its leaderboard (table artifact ``grid-leaderboard``)
    and its verdicts and location (markdown artifact ``grid-report``)."""
    return build_and_publish_report(grid_id, Settings.from_env(warehouse, output_dir))
