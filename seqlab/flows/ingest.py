"""ingest-prices: source -> parse -> pandera -> warehouse -> Great Expectations gate."""

from __future__ import annotations

import time

from prefect import flow

from seqlab.config import Settings
from seqlab.ingest.options import IngestOptions, IngestSummary
from seqlab.runners.ingest import summarize
from seqlab.tasks.ingest import (
    check_stored_dataset,
    parse_file,
    publish_ingest_summary,
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
    publish_ingest_summary(summaries)
    return [s.to_dict() for s in summaries]
