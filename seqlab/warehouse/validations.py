"""Recording dataset validation runs and answering "may training use this data?"."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from seqlab.warehouse.clock import utc_now
from seqlab.warehouse.connection import connect

# The same words Great Expectations 1.x uses for expectation severity.
CRITICAL = "critical"
SEVERITIES = frozenset({CRITICAL, "warning", "info"})


@dataclass(frozen=True)
class GateStatus:
    """Whether the symbol's current data passed its latest validation, and why (not)."""

    passed: bool
    data_version: str | None
    failed: list[str]
    validated_at: datetime | None
    reason: str
    validation_id: str | None = None
    warnings: list[str] = field(default_factory=list)


def _observed_text(observed: Any) -> str | None:
    if observed is None or isinstance(observed, str):
        return observed
    return json.dumps(observed, default=str, sort_keys=True)


def _outcome_row(outcome: Any) -> tuple[str, str, bool, str | None]:
    """Accepts (name, severity, success, observed) tuples or objects with those attributes."""
    if hasattr(outcome, "name") and hasattr(outcome, "success"):
        name, severity = outcome.name, outcome.severity
        success, observed = outcome.success, getattr(outcome, "observed", None)
    else:
        name, severity, success, observed = outcome
    # GX hands out enum members; their value is the word.
    severity_word = str(getattr(severity, "value", severity)).lower()
    if severity_word not in SEVERITIES:
        raise ValueError(
            f"expectation {name!r}: severity {severity!r} is not one of {sorted(SEVERITIES)}"
        )
    return str(name), severity_word, bool(success), _observed_text(observed)


def record_validation(
    path: Path,
    *,
    symbol: str,
    data_version: str,
    outcomes: Iterable[Any],
    docs_path: str | None,
    timeout_s: float = 10.0,
) -> str:
    """Store one validation run of ``symbol`` at ``data_version``; return its validation_id.

    Each outcome is ``(name, severity, success, observed)`` or an object with those
    attributes; severity is critical, warning or info. ``observed`` is kept as text
    (JSON for non-strings). A run must have at least one outcome.
    """
    rows = [_outcome_row(outcome) for outcome in outcomes]
    if not rows:
        raise ValueError(f"validation of {symbol} at {data_version} has no outcomes to record")
    with connect(path, timeout_s=timeout_s) as con:
        con.execute("BEGIN TRANSACTION")
        # Strictly later than the previous run of the symbol even if the clock stepped back,
        # so "latest" is always the run recorded last.
        previous = con.execute(
            "SELECT max(validated_at) FROM validations WHERE symbol = ?", [symbol]
        ).fetchall()[0][0]
        validated_at = utc_now()
        if previous is not None and validated_at <= previous:
            validated_at = previous + timedelta(microseconds=1)
        validation_id = f"{validated_at:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        con.executemany(
            "INSERT INTO validations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [validation_id, symbol, data_version, name, severity, success, observed,
                 validated_at, docs_path]
                for name, severity, success, observed in rows
            ],
        )  # fmt: skip
        con.execute("COMMIT")
    return validation_id


def load_validations(
    path: Path, symbol: str | None = None, *, timeout_s: float = 10.0
) -> pl.DataFrame:
    """Recorded expectation outcomes (of one symbol, or all), oldest run first."""
    with connect(path, read_only=True, timeout_s=timeout_s) as con:
        return con.sql(
            """
            SELECT * FROM validations WHERE $symbol IS NULL OR symbol = $symbol
            ORDER BY validated_at, validation_id
            """,
            params={"symbol": symbol},
        ).pl()


def latest_gate(path: Path, symbol: str, *, timeout_s: float = 10.0) -> GateStatus:
    """Gate for training: passed only when the latest validation of the symbol's CURRENT
    data_version had every critical expectation succeed (and had at least one).

    No warehouse file, no stored data, no validation of the current version, or a run
    without critical expectations all give ``passed=False`` with the reason spelled out.
    Trainers go through ``seqlab.warehouse.gate.require_validated``, which also checks
    that the stored prices still hash to that data_version.
    """
    if not Path(path).exists():
        return GateStatus(False, None, [], None, f"warehouse {path} does not exist yet")
    with connect(path, read_only=True, timeout_s=timeout_s) as con:
        versions = con.execute(
            "SELECT data_version FROM datasets WHERE symbol = ?", [symbol]
        ).fetchall()
        if not versions:
            return GateStatus(False, None, [], None, f"no data stored for {symbol} in {path}")
        return gate_of_version(con, symbol, versions[0][0])


def gate_of_version(con: duckdb.DuckDBPyConnection, symbol: str, version: str) -> GateStatus:
    """The gate as the latest validation of ``symbol`` at exactly ``version`` decides it."""
    latest = con.execute(
        """
        SELECT validation_id, validated_at FROM validations
        WHERE symbol = ? AND data_version = ?
        ORDER BY validated_at DESC, validation_id DESC LIMIT 1
        """,
        [symbol, version],
    ).fetchall()
    if not latest:
        return GateStatus(
            False, version, [], None,
            f"{symbol} data_version {version[:12]} has not been validated yet",
        )  # fmt: skip
    validation_id, validated_at = latest[0]
    outcomes = con.execute(
        "SELECT expectation, severity, success FROM validations WHERE validation_id = ?",
        [validation_id],
    ).fetchall()
    critical = [(name, ok) for name, severity, ok in outcomes if severity == CRITICAL]
    failed = [name for name, ok in critical if not ok]
    warnings = [name for name, severity, ok in outcomes if severity != CRITICAL and not ok]
    if not critical:
        reason = f"validation {validation_id} has no critical expectations"
    elif failed:
        reason = f"{len(failed)} of {len(critical)} critical expectations failed: {failed}"
    else:
        reason = f"all {len(critical)} critical expectations passed"
    return GateStatus(
        bool(critical) and not failed, version, failed, validated_at, reason,
        validation_id, warnings,
    )  # fmt: skip
