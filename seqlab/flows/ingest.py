"""ingest-prices: source -> parse -> pandera -> warehouse -> Great Expectations gate."""

from __future__ import annotations

import time

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from seqlab.config import Settings
from seqlab.ingest.pipeline import IngestOptions, IngestSummary, summarize
from seqlab.tasks.ingest import (
    check_stored_dataset,
    parse_file,
    read_source_files,
    store_file,
    validate_file_rows,
)


@flow(name="ingest-prices", log_prints=True)
def ingest_prices(
    source: str,
    symbol: str = "ETH",
    warehouse: str | None = None,
    output_dir: str | None = None,
    allow_private_urls: bool | None = None,
) -> list[dict]:
    """Ingest every file of ``source``; each file is stored in one transaction, then gated.

    ``symbol`` is checked before anything is read. URLs to loopback, private or link-local
    hosts are refused unless ``allow_private_urls`` (default: $SEQLAB_ALLOW_PRIVATE_URLS).
    """
    settings = Settings.from_env(warehouse, output_dir)
    options = IngestOptions.from_settings(settings, symbol, allow_private_urls=allow_private_urls)
    summaries: list[IngestSummary] = []
    for raw in read_source_files(source, options.sources):
        started = time.perf_counter()
        parsed = parse_file(raw, symbol)
        validation = validate_file_rows(parsed, options.today, options.values)
        stored = store_file(parsed, validation, options)
        gate = check_stored_dataset(options, stored.data_version)
        summaries.append(
            summarize(parsed, validation, stored, gate, options, time.perf_counter() - started)
        )
    publish_ingest_artifacts(summaries)
    return [s.to_dict() for s in summaries]


def publish_ingest_artifacts(summaries: list[IngestSummary]) -> None:
    """A markdown summary and a table of the files, shown on the flow run in the UI."""
    rows = [
        {
            "source": s.source, "layout": s.layout, "rows_read": s.rows_read,
            "rows_valid": s.rows_valid, "rows_quarantined": s.rows_quarantined,
            "rows_inserted": s.rows_inserted, "rows_updated": s.rows_updated,
            "gate": "passed" if s.gate_passed else "FAILED", "data_version": s.data_version[:12],
        }
        for s in summaries
    ]
    create_table_artifact(key="ingest-files", table=rows, description="Files ingested")
    lines = ["# Ingest", ""]
    for s in summaries:
        gate = "passed" if s.gate_passed else f"**FAILED** ({', '.join(s.gate_failed)})"
        lines += [
            f"## `{s.source}`",
            f"- layout `{s.layout}`, sha256 `{s.sha256[:16]}`",
            f"- rows read {s.rows_read}: valid {s.rows_valid}, quarantined {s.rows_quarantined}"
            + (f" ({', '.join(f'{k}: {v}' for k, v in s.quarantine_rules.items())})" if s.quarantine_rules else ""),
            f"- stored: {s.rows_inserted} inserted, {s.rows_updated} updated, {s.rows_unchanged} unchanged",
            f"- data_version `{s.data_version[:16]}`; dataset gate {gate}",
            "",
        ]
    create_markdown_artifact(key="ingest-summary", markdown="\n".join(lines))
