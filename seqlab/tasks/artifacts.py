"""What a run shows in Prefect's UI about a grid's report: two artifacts, one renderer.

``grid-leaderboard`` (table): the grid's ``leaderboard`` view against persistence, ranked on
validation. ``grid-report`` (markdown): the six verdicts and where the report lies, as a
path and, where ``SEQLAB_REPORT_URL`` serves the output folder, a link. ``train-grid``
and ``report`` publish both; ``pipeline`` and ``retrain`` through them.
"""

from __future__ import annotations

import os
from pathlib import Path

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from seqlab.runners.report import LEADERBOARD_KEY, REPORT_KEY, ReportBuild, report_artifacts

REPORT_URL_ENV = "SEQLAB_REPORT_URL"  # the address serving SEQLAB_OUTPUT_DIR, e.g. http://host:8000


def publish_report_artifacts(built: ReportBuild, output_dir: Path) -> dict[str, str]:
    """Publish the leaderboard table and the verdicts markdown of ``built``; their ids by key."""
    rows, markdown = report_artifacts(built, served_root=output_dir,
                                      base_url=os.environ.get(REPORT_URL_ENV))
    table_id = create_table_artifact(
        key=LEADERBOARD_KEY, table=rows,
        description=f"Grid {built.grid_id}: configs ranked on validation, test RMSE against persistence",
    )
    markdown_id = create_markdown_artifact(
        key=REPORT_KEY, markdown=markdown,
        description=f"Grid {built.grid_id}: the claims' verdicts and where the report lies",
    )
    return {LEADERBOARD_KEY: str(table_id), REPORT_KEY: str(markdown_id)}
