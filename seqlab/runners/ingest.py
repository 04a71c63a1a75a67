"""Ingest as plain functions: source -> parse -> row validation -> warehouse -> dataset gate.

The shell around the pure ingest core (``seqlab.ingest``): the steps here store and read
the warehouse. :func:`ingest_raw` is one file's ingest, written once: the CLI runs it with
these plain steps, the ingest flow with their Prefect tasks (``seqlab/tasks/ingest.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from seqlab.checks.dataset import DatasetValidation, check_dataset
from seqlab.ingest.options import IngestOptions, IngestSummary, quarantine_counts
from seqlab.ingest.parse import ParsedSource, parse_source
from seqlab.ingest.sources import RawSource, iter_sources
from seqlab.schemas.prices import RowValidation, validate_rows
from seqlab.warehouse import IngestRecord, StoreResult, load_prices, record_validation, store_ingest

__all__ = ["IngestOptions", "IngestSteps", "IngestSummary", "gate_dataset", "ingest_raw",
           "ingest_source", "parse_raw", "plain_steps", "store_parsed", "summarize",
           "validate_parsed"]


def store_parsed(
    parsed: ParsedSource, validation: RowValidation, options: IngestOptions, started_at: datetime
) -> StoreResult:
    """Write valid rows and every refused row (parse + validation) in one transaction."""
    record = IngestRecord(
        symbol=options.symbol,
        source=parsed.source,
        sha256=parsed.sha256,
        layout=parsed.layout,
        rows_read=parsed.rows_read,
        started_at=started_at,
    )
    refused = parsed.rejects.vstack(validation.quarantined.select(parsed.rejects.columns))
    return store_ingest(
        options.warehouse, record, validation.valid, refused, timeout_s=options.lock_timeout_s
    )


def gate_dataset(options: IngestOptions, data_version: str) -> DatasetValidation:
    """Run the dataset expectations on the symbol's stored prices and record the outcome."""
    prices = load_prices(options.warehouse, options.symbol)
    validation = check_dataset(
        prices, symbol=options.symbol, config=options.checks, today=options.today,
        docs_dir=options.docs_dir,
    )
    record_validation(
        options.warehouse,
        symbol=options.symbol,
        data_version=data_version,
        outcomes=validation.outcomes,
        docs_path=str(validation.docs_path) if validation.docs_path else None,
    )
    return validation


def parse_raw(raw: RawSource, options: IngestOptions) -> ParsedSource:
    return parse_source(raw, symbol=options.symbol)


def validate_parsed(parsed: ParsedSource, options: IngestOptions) -> RowValidation:
    return validate_rows(parsed.rows, today=options.today, limits=options.values)


@dataclass(frozen=True)
class IngestSteps:
    """The four steps of one file's ingest, swappable as one: these plain functions by
    default, their Prefect tasks (names, retries) in the ingest flow."""

    parse: Callable[[RawSource, IngestOptions], ParsedSource]
    validate: Callable[[ParsedSource, IngestOptions], RowValidation]
    store: Callable[[ParsedSource, RowValidation, IngestOptions, datetime], StoreResult]
    gate: Callable[[IngestOptions, str], DatasetValidation]


def plain_steps() -> IngestSteps:
    """This module's steps, looked up when called (a benchmark or test may wrap one)."""
    return IngestSteps(parse_raw, validate_parsed, store_parsed, gate_dataset)


def ingest_raw(raw: RawSource, options: IngestOptions,
               steps: IngestSteps | None = None) -> IngestSummary:
    """Ingest one file or download end to end: parse, validate, store, gate, summarize."""
    steps = steps or plain_steps()
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    parsed = steps.parse(raw, options)
    validation = steps.validate(parsed, options)
    # Only validation reads the parsed rows (with every line's raw text, as big as the file);
    # letting them go before the store keeps them out of the peak memory of big files.
    parsed.rows = parsed.rows.clear()
    stored = steps.store(parsed, validation, options, started_at)
    gate = steps.gate(options, stored.data_version)
    return summarize(parsed, validation, stored, gate, options, time.perf_counter() - started)


def ingest_source(source: str, options: IngestOptions) -> list[IngestSummary]:
    """Ingest every file a source names (file, folder, glob or URL), one transaction each.

    Files are read one at a time, so a folder never sits in memory whole; a file that cannot
    be read or parsed raises SourceError after the files before it were stored.
    """
    summaries = []
    for raw in iter_sources(source, options.sources):
        summaries.append(ingest_raw(raw, options))
        del raw  # this file's bytes go before the next file is read
    return summaries


def summarize(
    parsed: ParsedSource,
    validation: RowValidation,
    stored: StoreResult,
    gate: DatasetValidation,
    options: IngestOptions,
    seconds: float,
) -> IngestSummary:
    rows_quarantined = parsed.rejects.height + validation.quarantined.height
    return IngestSummary(
        source=parsed.source,
        sha256=parsed.sha256,
        layout=parsed.layout,
        symbol=options.symbol,
        rows_read=parsed.rows_read,
        rows_valid=validation.valid.height,
        rows_quarantined=rows_quarantined,
        rows_inserted=stored.rows_inserted,
        rows_updated=stored.rows_updated,
        rows_unchanged=stored.rows_unchanged,
        data_version=stored.data_version,
        ingestion_id=stored.ingestion_id,
        quarantine_rules=quarantine_counts(parsed, validation),
        gate_passed=gate.passed,
        gate_failed=[o.name for o in gate.outcomes if o.severity == "critical" and not o.success],
        docs_path=str(gate.docs_path) if gate.docs_path else None,
        seconds=round(seconds, 3),
    )
