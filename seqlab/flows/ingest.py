"""ingest-prices: source -> parse -> pandera -> warehouse -> Great Expectations gate."""

from __future__ import annotations

from prefect import flow

from seqlab.config import Settings
from seqlab.ingest.options import IngestOptions, IngestSummary, limits_from_env
from seqlab.runners.ingest import ingest_raw
from seqlab.tasks.ingest import TASK_STEPS, publish_ingest_summary, read_source_files


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
    sources, values = limits_from_env(allow_private_urls)
    options = IngestOptions.from_settings(settings, symbol, sources=sources, values=values)
    summaries: list[IngestSummary] = [
        ingest_raw(raw, options, TASK_STEPS) for raw in read_source_files(source, options.sources)]
    publish_ingest_summary(summaries)
    return [s.to_dict() for s in summaries]
