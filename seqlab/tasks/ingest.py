"""Prefect task wrappers for the data path: retries and names here, logic in seqlab.ingest."""

from __future__ import annotations

from datetime import UTC, date, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from seqlab.checks.dataset import DatasetValidation
from seqlab.checks.row_rules import ValueLimits
from seqlab.ingest import pipeline
from seqlab.ingest.fetch import SourceLimits
from seqlab.ingest.parse import ParsedSource, parse_source
from seqlab.ingest.sources import RawSource, read_sources
from seqlab.schemas.prices import RowValidation, validate_rows
from seqlab.warehouse import StoreResult


@task(name="read-source", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def read_source_files(source: str, limits: SourceLimits = SourceLimits()) -> list[RawSource]:
    """Files behind a path, folder, glob or URL (URLs may fail transiently: retried)."""
    return read_sources(source, limits)


@task(name="parse-source", task_run_name="parse-{raw.name}", cache_policy=NO_CACHE)
def parse_file(raw: RawSource, symbol: str) -> ParsedSource:
    return parse_source(raw, symbol=symbol)


@task(name="validate-rows", cache_policy=NO_CACHE)
def validate_file_rows(
    parsed: ParsedSource, today: date | None = None, limits: ValueLimits = ValueLimits()
) -> RowValidation:
    return validate_rows(parsed.rows, today=today, limits=limits)


# The warehouse file may be held by another writer for a while: retry with backoff.
@task(name="store-prices", retries=3, retry_delay_seconds=[2, 5, 15], cache_policy=NO_CACHE)
def store_file(
    parsed: ParsedSource, validation: RowValidation, options: pipeline.IngestOptions
) -> StoreResult:
    return pipeline.store_parsed(parsed, validation, options, datetime.now(UTC))


@task(name="check-dataset", retries=2, retry_delay_seconds=[2, 5], cache_policy=NO_CACHE)
def check_stored_dataset(options: pipeline.IngestOptions, data_version: str) -> DatasetValidation:
    return pipeline.gate_dataset(options, data_version)
