"""Prefect tasks for the report: build it with the CLI's code, publish it as artifacts."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from seqlab.config import Settings
from seqlab.runners.report import REPORT_KEY, build_report
from seqlab.tasks.artifacts import publish_report_artifacts
from seqlab.warehouse.reports import latest_grid_id


def report_dir(output_dir: Path, grid_id: str) -> Path:
    """Where the flow puts a grid's report: one folder per grid under the output folder."""
    return Path(output_dir) / "reports" / grid_id


@task(name="build-and-publish-report", cache_policy=NO_CACHE)
def build_and_publish_report(grid_id: str | None, settings: Settings) -> dict:
    """Build the report of ``grid_id`` (the latest grid when None) into its own folder and
    publish its leaderboard (table) and verdicts (markdown) as artifacts."""
    if grid_id is None:
        grid_id = latest_grid_id(settings.warehouse, timeout_s=settings.lock_timeout_s)
    built = build_report(settings.warehouse, grid_id=grid_id,
                         out_dir=report_dir(settings.output_dir, grid_id),
                         timeout_s=settings.lock_timeout_s)
    artifacts = publish_report_artifacts(built, settings.output_dir)
    get_run_logger().info(
        "report of grid %s: %s (%.1f MB), %s; claims %s", built.grid_id, built.html_path,
        built.html_bytes / 1e6, built.markdown_path, built.claims,
    )
    return {**built.to_dict(), "artifact_id": artifacts[REPORT_KEY], "artifacts": artifacts}


def with_report(closed_grid: dict, settings: Settings) -> dict:
    """A closed grid's summary with its report built and published (``report``): what
    ``train-grid`` returns, so a grid run always shows its results in the UI."""
    return {**closed_grid, "report": build_and_publish_report(closed_grid["grid_id"], settings)}
