"""Timestamps as the warehouse stores them: naive ``TIMESTAMP`` values in UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time, UTC, without tzinfo (DuckDB ``TIMESTAMP``)."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_utc_naive(moment: datetime) -> datetime:
    """Aware datetimes are converted to UTC; naive ones are taken to be UTC already."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)
