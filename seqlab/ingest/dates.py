"""Turning source date/time text into the UTC calendar day and the time of day in seconds.

``parse_dates`` is the entry point: it returns NULL where a text cannot be read, so the
caller can reject that line as ``unparseable_date``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import polars as pl

# ISO-8601 style timestamps: a date, optionally a time, optionally a UTC marker or offset.
_ISO_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?)?"
    r" ?(?:Z|UTC|GMT|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])?$"  # real offsets only: +99:99 is junk
)
_OFFSET_PATTERN = r"[0-9]:[0-9]{2}(?:[.,][0-9]+)? ?[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9]$"
_DAY_MONTH_PATTERN = r"^([0-9]{1,2})[-/.]([0-9]{1,2})[-/.]([0-9]{4})$"
# The two shapes nearly every big file uses; polars parses them natively, much faster than
# the general ISO path, which then only sees the lines these formats did not read.
_FAST_ISO_FORMATS = (
    (re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"), "%Y-%m-%d"),
    (re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"), "%Y-%m-%d %H:%M:%S"),
    (re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"), "%Y-%m-%dT%H:%M:%S"),
)
_SECONDS_PER_DAY = 86_400
# Python's date spans years 1..9999 while polars' reaches far beyond: a day outside that
# range (year 0, an epoch of 19 digits) would crash whatever turns it into a Python date.
_FIRST_DAY, _LAST_DAY = dt.date.min, dt.date.max
_NO_TIME = pl.lit(None, dtype=pl.Int32)


@dataclass(frozen=True)
class _DateExprs:
    """Expressions for the day and time of day; ``helpers`` are columns to compute first."""

    date: pl.Expr
    time_of_day_s: pl.Expr
    helpers: dict[str, pl.Expr] = field(default_factory=dict)


def parse_dates(texts: pl.Series, date_format: str) -> pl.DataFrame:
    """``date`` (UTC day) and ``time_of_day_s`` (NULL for date-only text) for every text.

    ``date_format`` is one of ``iso``, ``unix``, ``month_name`` or ``day_month`` (whose
    day/month order is inferred from the whole column, see infer_day_first). Days outside
    Python's calendar (years 1..9999) count as unreadable.
    """
    return _within_calendar(_parse_dates(texts, date_format))


def _within_calendar(parsed: pl.DataFrame) -> pl.DataFrame:
    inside = pl.col("date").is_between(_FIRST_DAY, _LAST_DAY)
    if parsed.select(inside.all(ignore_nulls=True)).item():
        return parsed  # the usual case: no copy
    return parsed.with_columns(pl.when(inside).then(pl.col(name)) for name in parsed.columns)


def _parse_dates(texts: pl.Series, date_format: str) -> pl.DataFrame:
    if date_format == "iso":
        return _parse_iso_dates(texts)
    text = pl.col("text")
    if date_format == "unix":
        exprs = _unix_timestamp(text)
    elif date_format == "month_name":
        exprs = _month_name_date(text)
    elif date_format == "day_month":
        exprs = _day_month_date(text, day_first=infer_day_first(texts))
    else:
        raise ValueError(f"unknown date format {date_format!r}")
    return _evaluate(texts, exprs)


def _evaluate(texts: pl.Series, exprs: _DateExprs) -> pl.DataFrame:
    return (
        texts.to_frame("text")
        .with_columns(**exprs.helpers)
        .select(date=exprs.date, time_of_day_s=exprs.time_of_day_s.cast(pl.Int32))
    )


def _parse_iso_dates(texts: pl.Series) -> pl.DataFrame:
    """The fast native format when the first value has one, the general parser for the rest."""
    sample = texts.drop_nulls().head(1).to_list()
    fast_format = next(
        (fmt for pattern, fmt in _FAST_ISO_FORMATS if sample and pattern.fullmatch(sample[0])),
        None,
    )
    if fast_format is None:
        return _evaluate(texts, _iso_timestamp(pl.col("text"), _has_utc_offsets(texts)))
    text = pl.col("text")
    if fast_format == "%Y-%m-%d":
        parsed = texts.to_frame("text").select(
            date=text.str.to_date(fast_format, strict=False), time_of_day_s=_NO_TIME
        )
    else:
        # chrono reads second 60 as a leap second rolling into the next day; leave those
        # to the general parser, which refuses them.
        stamp = pl.when(~text.str.ends_with(":60")).then(
            text.str.to_datetime(fast_format, strict=False, time_unit="ms")
        )
        stamps = texts.to_frame("text").select(stamp=stamp).to_series()
        clock = (
            stamps.dt.hour().cast(pl.Int32) * 3600
            + stamps.dt.minute().cast(pl.Int32) * 60
            + stamps.dt.second().cast(pl.Int32)
        )
        parsed = pl.DataFrame({"date": stamps.dt.date(), "time_of_day_s": clock})
    retry = parsed.select(pl.arg_where(pl.col("date").is_null() & texts.is_not_null()))
    retry = retry.to_series()
    if retry.len() == 0:
        return parsed
    rest = texts.gather(retry)
    general = _evaluate(rest, _iso_timestamp(pl.col("text"), _has_utc_offsets(rest)))
    return parsed.with_columns(
        parsed.get_column(name).scatter(retry, general.get_column(name)) for name in parsed.columns
    )


def _has_utc_offsets(texts: pl.Series) -> bool:
    return bool(texts.str.contains(_OFFSET_PATTERN).any())


def _iso_timestamp(text: pl.Expr, with_offsets: bool) -> _DateExprs:
    """ISO dates/timestamps (``2015-08-07``, ``2015-08-07 00:05:11 UTC``, ``...T00:00:00.000Z``).

    Fixed-position slices instead of regex captures keep this fast. With ``with_offsets`` a
    trailing ``+HH:MM``/``-HHMM`` moves the timestamp to UTC before the day is taken.
    """
    well_formed = text.str.contains(_ISO_PATTERN)
    day = text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    has_time = text.str.len_bytes() >= 16
    has_seconds = text.str.slice(16, 1) == ":"
    hours = text.str.slice(11, 2).cast(pl.Int32, strict=False)
    minutes = text.str.slice(14, 2).cast(pl.Int32, strict=False)
    secs = pl.when(has_seconds).then(text.str.slice(17, 2).cast(pl.Int32, strict=False))
    secs = secs.otherwise(0)
    clock_ok = (hours < 24) & (minutes < 60) & (secs < 60)
    seconds = hours * 3600 + minutes * 60 + secs
    if with_offsets:
        tail = text.str.tail(6).str.replace(":", "", literal=True).str.tail(5)
        sign = pl.when(tail.str.slice(0, 1) == "-").then(-1).otherwise(1)
        offset_s = sign * (
            tail.str.slice(1, 2).cast(pl.Int32, strict=False) * 3600
            + tail.str.slice(3, 2).cast(pl.Int32, strict=False) * 60
        )
        seconds = seconds - pl.when(text.str.contains(_OFFSET_PATTERN)).then(offset_s).otherwise(0)
        day = day + pl.duration(days=seconds.floordiv(_SECONDS_PER_DAY).fill_null(0))
    helpers = {
        "iso_ok": well_formed & (~has_time | clock_ok),
        "iso_day": day,
        "iso_seconds": pl.when(has_time).then(seconds),
    }
    ok = pl.col("iso_ok")
    return _DateExprs(
        date=pl.when(ok).then(pl.col("iso_day")),
        time_of_day_s=pl.when(ok).then(pl.col("iso_seconds").mod(_SECONDS_PER_DAY)),
        helpers=helpers,
    )


def _unix_timestamp(text: pl.Expr) -> _DateExprs:
    """Epoch timestamps in seconds, milliseconds or microseconds, told apart by magnitude.

    CryptoDataDownload mixes 10-digit seconds and 13-digit milliseconds in one column;
    anything at or above 1e11 cannot be seconds (that would be the year 5138).
    """
    number = text.cast(pl.Int64, strict=False)
    number = pl.when(number > 0).then(number)
    seconds = (
        pl.when(number >= 10**14)
        .then(number // 1_000_000)
        .when(number >= 10**11)
        .then(number // 1_000)
        .otherwise(number)
    )
    date = pl.lit(0).cast(pl.Date) + pl.duration(days=seconds.floordiv(_SECONDS_PER_DAY))
    return _DateExprs(pl.when(seconds.is_not_null()).then(date), seconds.mod(_SECONDS_PER_DAY))


def _month_name_date(text: pl.Expr) -> _DateExprs:
    """Dates written out the way web tables show them: ``Dec 19, 2024`` or ``December 19, 2024``."""
    date = pl.coalesce(
        text.str.to_date("%b %d, %Y", strict=False),
        text.str.to_date("%B %d, %Y", strict=False),
    )
    return _DateExprs(date, _NO_TIME)


def _day_month_date(text: pl.Expr, day_first: bool) -> _DateExprs:
    """``DD-MM-YYYY`` (``day_first``) or ``MM-DD-YYYY`` dates; separators ``-``, ``/`` or ``.``."""
    parts = text.str.extract_groups(_DAY_MONTH_PATTERN)
    first, second, year = (parts.struct.field(name) for name in ("1", "2", "3"))
    day, month = (first, second) if day_first else (second, first)
    iso = pl.concat_str(year, month.str.zfill(2), day.str.zfill(2), separator="-")
    return _DateExprs(iso.str.to_date("%Y-%m-%d", strict=False), _NO_TIME)


def infer_day_first(dates: pl.Series) -> bool:
    """Decide DD-MM vs MM-DD for a whole file from its content.

    A component above 12 settles it; otherwise the reading under which more neighbouring rows
    are exactly one day apart wins (daily files are consecutive in either direction). A tie,
    e.g. a single row, falls back to month first, the US default that Investing.com uses.
    """
    parts = dates.to_frame("text").select(
        pl.col("text").str.extract_groups(_DAY_MONTH_PATTERN).alias("parts")
    )
    parts = parts.unnest("parts")
    if (parts["1"].cast(pl.Int64, strict=False) > 12).any():
        return True
    if (parts["2"].cast(pl.Int64, strict=False) > 12).any():
        return False

    def count_consecutive(day_first: bool) -> int:
        parsed = _evaluate(dates, _day_month_date(pl.col("text"), day_first))["date"]
        return int((parsed.diff().dt.total_days().abs() == 1).sum())

    return count_consecutive(True) > count_consecutive(False)
