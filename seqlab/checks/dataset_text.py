"""Short human accounts of Great Expectations results (the ``observed`` of an outcome).

Works on ``ExpectationValidationResult.to_json_dict()``. Failing rows arrive as row
positions (``partial_unexpected_index_list``) with their values (``partial_unexpected_list``),
at most 20 of them (the SUMMARY result format's cap), so "e.g." lists are samples while
counts are exact. Positions are turned into dates with the checked frame's date column:
asking GX for ``unexpected_index_column_names`` instead makes it look up every failing row
one by one in pandas (minutes on 1M bad rows).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import polars as pl

Result = dict[str, Any]
_SHOWN = 3  # failing rows named in one account


def _failures(result: Result, dates: pl.Series) -> tuple[int, list[tuple[dt.date, Any]]]:
    """Exact failure count and a sample of (date, value) for failing rows."""
    details = result.get("result") or {}
    positions = details.get("partial_unexpected_index_list") or []
    values = details.get("partial_unexpected_list") or []
    return int(details.get("unexpected_count") or 0), [
        (dates[int(p)], v) for p, v in zip(positions, values, strict=False)
    ]


def _enough_rows(result: Result, limits: dict[str, Any], dates: pl.Series) -> str:
    return f"{result['result']['observed_value']} rows (min {limits['min_rows']})"


def _unique_dates(result: Result, limits: dict[str, Any], dates: pl.Series) -> str:
    count, rows = _failures(result, dates)
    if count == 0:
        return "no repeated dates"
    shared = sorted({str(day) for day, _ in rows})
    return f"{count} rows share a date with another row, e.g. {', '.join(shared[:_SHOWN])}"


def _increasing_dates(result: Result, limits: dict[str, Any], dates: pl.Series) -> str:
    count, rows = _failures(result, dates)
    if count == 0:
        return "dates ascend"
    return f"{count} row(s) dated before the row above, first {rows[0][0]}"


def _close_within_low_high(result: Result, limits: dict[str, Any], dates: pl.Series) -> str:
    count, rows = _failures(result, dates)
    if count == 0:
        return "close within [low, high] on every row that has them"
    shown = ", ".join(f"{day} ({excess:.2%} of close outside)" for day, excess in rows[:_SHOWN])
    return f"{count} rows with close outside [low, high], e.g. {shown}"


def _no_long_gaps(result: Result, limits: dict[str, Any], dates: pl.Series) -> str:
    count, rows = _failures(result, dates)
    limit = limits["max_gap_days"]
    if count == 0:
        return f"no gap > {limit} days"
    longest = sorted(rows, key=lambda row: -row[1])[:_SHOWN]
    shown = ", ".join(
        f"{int(gap)} days from {day - dt.timedelta(days=int(gap))}" for day, gap in longest
    )
    # Only a sample is listed past 20 failures, so "longest" would overclaim there.
    label = "longest" if count <= len(rows) else "e.g."
    return f"{count} gap(s) > {limit} days, {label} {shown}"


def _plausible_daily_returns(result: Result, limits: dict[str, Any], dates: pl.Series) -> str:
    count, rows = _failures(result, dates)
    limit = limits["max_abs_daily_return"]
    if count == 0:
        return f"no daily close return beyond ±{limit:.0%}"
    largest = sorted(rows, key=lambda row: -abs(row[1]))[:_SHOWN]
    shown = ", ".join(f"{change:+.0%} on {day}" for day, change in largest)
    return f"{count} daily close returns beyond ±{limit:.0%}, e.g. {shown}"


def _fresh_data(result: Result, limits: dict[str, Any], dates: pl.Series) -> str:
    observed = result["result"].get("observed_value")
    if observed is None:
        return "no dates to judge"
    age = int(observed)
    latest = limits["today"] - dt.timedelta(days=age)
    return f"latest date {latest} is {age} days before {limits['today']} (max {limits['max_staleness_days']})"


_ACCOUNTS: Mapping[str, Callable[[Result, dict[str, Any], pl.Series], str]] = MappingProxyType(
    {
        "enough_rows": _enough_rows,
        "unique_dates": _unique_dates,
        "increasing_dates": _increasing_dates,
        "close_within_low_high": _close_within_low_high,
        "no_long_gaps": _no_long_gaps,
        "plausible_daily_returns": _plausible_daily_returns,
        "fresh_data": _fresh_data,
    }
)


def describe_result(name: str, result: Result, limits: dict[str, Any], dates: pl.Series) -> str:
    """One line on what expectation ``name`` saw.

    ``limits`` holds the config fields and ``today``; ``dates`` is the checked frame's
    date column, indexed by the row positions GX reports.
    """
    exception = result.get("exception_info") or {}
    if exception.get("raised_exception"):
        message = str(exception.get("exception_message") or "unknown error").splitlines()[0]
        return f"could not be evaluated: {message}"
    try:
        return _ACCOUNTS[name](result, limits, dates)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        # An account is a courtesy: never let its wording hide the verdict.
        return f"result not describable ({type(error).__name__}: {error})"
