"""report: rebuild a grid's comparison report from the warehouse and publish it as an artifact."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from seqlab.config import Settings
from seqlab.report.build import build_report

ARTIFACT_KEY = "grid-report"


def report_dir(output_dir: Path, grid_id: str) -> Path:
    """Where the flow puts a grid's report: one folder per grid under the output folder."""
    return Path(output_dir) / "reports" / grid_id


@flow(name="report", log_prints=True)
def build_grid_report(
    grid_id: str | None = None, warehouse: str | None = None, output_dir: str | None = None
) -> dict:
    """Build the report of ``grid_id`` (latest grid when None) with the same code as
    ``seqlab report``, then publish its summary and leaderboard as a markdown artifact."""
    settings = Settings.from_env(warehouse, output_dir)
    if grid_id is None:
        from seqlab.warehouse.reports import latest_grid_id

        grid_id = latest_grid_id(settings.warehouse, timeout_s=settings.lock_timeout_s)
    built = build_report(settings.warehouse, grid_id=grid_id,
                         out_dir=report_dir(settings.output_dir, grid_id),
                         timeout_s=settings.lock_timeout_s)
    artifact_id = create_markdown_artifact(
        key=ARTIFACT_KEY, markdown=built.artifact_markdown,
        description=f"Comparison report of grid {built.grid_id}",
    )
    get_run_logger().info(
        "report of grid %s: %s (%.1f MB), %s; claims %s", built.grid_id, built.html_path,
        built.html_bytes / 1e6, built.markdown_path, built.claims,
    )
    return {**built.to_dict(), "artifact_id": str(artifact_id)}
