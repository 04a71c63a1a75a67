"""Prefect task wrappers for the data path: retries and names here, logic in seqlab.runners.ingest."""

from __future__ import annotations

from datetime import datetime

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from seqlab.checks.dataset import DatasetValidation
from seqlab.ingest.fetch import FetchError, FetchLimitReached, FetchRefused, SourceLimits
from seqlab.ingest.options import IngestOptions, IngestSummary, summary_lines
from seqlab.ingest.parse import ParsedSource
from seqlab.ingest.sources import RawSource, SourceError, read_sources
from seqlab.runners import ingest as runner
from seqlab.schemas.prices import RowValidation
from seqlab.warehouse import StoreResult


def retry_transient_download(task, task_run, state) -> bool:
    """Retry a download that failed in passing (a reset, an HTTP 503), never a refusal, the
    overall deadline or the byte cap: retrying those would triple the deadline for nothing."""
    try:
        state.result()
    except SourceError as error:
        cause = error.__cause__
        return isinstance(cause, FetchError) and not isinstance(
            cause, FetchRefused | FetchLimitReached)
    except Exception:
        return False
    return False


@task(name="read-source-files", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE,
      retry_condition_fn=retry_transient_download)
def read_source_files(source: str, limits: SourceLimits = SourceLimits()) -> list[RawSource]:
    """Files behind a path, folder, glob or URL (URLs may fail transiently: retried)."""
    return read_sources(source, limits)


@task(name="parse-file", task_run_name="parse-{raw.name}", cache_policy=NO_CACHE)
def parse_file(raw: RawSource, options: IngestOptions) -> ParsedSource:
    return runner.parse_raw(raw, options)


@task(name="validate-file-rows", cache_policy=NO_CACHE)
def validate_file_rows(parsed: ParsedSource, options: IngestOptions) -> RowValidation:
    return runner.validate_parsed(parsed, options)


# The warehouse file may be held by another writer for a while: retry with backoff.
@task(name="store-file", retries=3, retry_delay_seconds=[2, 5, 15], cache_policy=NO_CACHE)
def store_file(parsed: ParsedSource, validation: RowValidation, options: IngestOptions,
               started_at: datetime) -> StoreResult:
    return runner.store_parsed(parsed, validation, options, started_at)


@task(name="check-stored-dataset", retries=2, retry_delay_seconds=[2, 5], cache_policy=NO_CACHE)
def check_stored_dataset(options: IngestOptions, data_version: str) -> DatasetValidation:
    return runner.gate_dataset(options, data_version)


# One file's ingest as tasks: the same runner.ingest_raw as the CLI's, step by step.
TASK_STEPS = runner.IngestSteps(parse_file, validate_file_rows, store_file, check_stored_dataset)


@task(name="publish-ingest-summary", cache_policy=NO_CACHE)
def publish_ingest_summary(summaries: list[IngestSummary]) -> None:
    """A table of the files and a markdown summary, shown on the flow run in the UI."""
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
    for summary in summaries:
        source, *details = summary_lines(summary)
        lines += [f"## `{source}`", *(f"- {d}" for d in details), ""]
    create_markdown_artifact(key="ingest-summary", markdown="\n".join(lines))
