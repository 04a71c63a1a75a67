"""An ingest's options and what it reports: plain data, no warehouse.

The steps that store and gate live in the shell (``seqlab.runners.ingest``); Prefect tasks
wrap those same steps one by one (``seqlab/tasks/ingest.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

from seqlab.checks.dataset import DatasetCheckConfig, data_docs_dir
from seqlab.config import EnvironmentSettings, Settings
from seqlab.ingest.fetch import SourceLimits
from seqlab.ingest.parse import ParsedSource
from seqlab.schemas.prices import RowValidation
from seqlab.schemas.row_rules import ValueLimits
from seqlab.schemas.symbols import check_symbol


@dataclass(frozen=True)
class IngestOptions:
    """One ingest's settings; the symbol is checked on construction (SymbolError)."""

    symbol: str = "ETH"
    warehouse: Path = Path("data/seqlab.duckdb")
    docs_dir: Path | None = None
    checks: DatasetCheckConfig = field(default_factory=DatasetCheckConfig)
    today: date | None = None
    lock_timeout_s: float = 10.0
    sources: SourceLimits = field(default_factory=SourceLimits)  # bytes, time, URL hosts
    values: ValueLimits = field(default_factory=ValueLimits)  # largest plausible values

    def __post_init__(self) -> None:
        check_symbol(self.symbol)

    @classmethod
    def from_settings(
        cls, settings: Settings, symbol: str, *, sources: SourceLimits = SourceLimits(),
        values: ValueLimits = ValueLimits(),
    ) -> IngestOptions:
        """Options for one symbol under the resolved settings (warehouse, docs, lock wait)
        and limits; the entry points (a command, a flow) read ``SEQLAB_*`` limits into
        ``sources`` and ``values``, nothing here reads the environment."""
        return cls(
            symbol=check_symbol(symbol),
            warehouse=settings.warehouse,
            docs_dir=data_docs_dir(settings.output_dir, symbol),
            lock_timeout_s=settings.lock_timeout_s,
            sources=sources,
            values=values,
        )


@dataclass(frozen=True)
class IngestSummary:
    """What one file's ingest did; ``rows_read == rows_valid + rows_quarantined`` always."""

    source: str
    sha256: str
    layout: str
    symbol: str
    rows_read: int
    rows_valid: int
    rows_quarantined: int
    rows_inserted: int
    rows_updated: int
    rows_unchanged: int
    data_version: str
    ingestion_id: str
    quarantine_rules: dict[str, int]
    gate_passed: bool
    gate_failed: list[str]
    docs_path: str | None
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def quarantine_counts(parsed: ParsedSource, validation: RowValidation) -> dict[str, int]:
    """Rows refused per rule, parse-time and validation-time together."""
    counts: dict[str, int] = {}
    for frame in (parsed.rejects, validation.quarantined):
        for rule, n in frame.group_by("rule").len().iter_rows():
            counts[rule] = counts.get(rule, 0) + n
    return dict(sorted(counts.items()))


def summary_lines(summary: IngestSummary) -> list[str]:
    """What one file's ingest did, as lines: the source, then its details. The one renderer
    of an ingest summary: ``seqlab ingest`` prints them, the flow's artifact lists them."""
    gate = "passed" if summary.gate_passed else f"FAILED ({', '.join(summary.gate_failed)})"
    return [
        summary.source,
        f"layout {summary.layout}, sha256 {summary.sha256[:12]}",
        f"rows read {summary.rows_read}: valid {summary.rows_valid}, "
        f"quarantined {summary.rows_quarantined} {summary.quarantine_rules or ''}",
        f"stored: {summary.rows_inserted} inserted, {summary.rows_updated} updated, "
        f"{summary.rows_unchanged} unchanged; data_version {summary.data_version[:12]}",
        f"dataset gate {gate}; data docs {summary.docs_path}",
    ]


def limits_from_env(allow_private_urls: bool | None = None) -> tuple[SourceLimits, ValueLimits]:
    """The checked ``SEQLAB_*`` limits of an ingest (seqlab.config); an explicit
    ``allow_private_urls`` wins. Called at the entry points (a command, a flow) only."""
    env = EnvironmentSettings.load()
    return (SourceLimits.from_env(allow_private_urls),
            ValueLimits(max_price=env.max_price, max_amount=env.max_amount))
