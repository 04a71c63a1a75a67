"""Settle several parsed rows claiming the same (symbol, date) down to one."""

from __future__ import annotations

import polars as pl

from seqlab.schemas.canonical import EXTRA_COLUMNS, PRICE_COLUMNS
from seqlab.schemas.row_rules import DUPLICATE_DATE_RULE

VALUE_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, *EXTRA_COLUMNS)
POSITION = "position"  # 0-based row position in the frame handed in


def _clock(seconds: pl.Expr) -> pl.Expr:
    """Seconds after UTC midnight as HH:MM:SS text; a date-only source reads as 00:00:00."""
    nanos = seconds.fill_null(0).cast(pl.Int64) * 1_000_000_000
    return nanos.cast(pl.Time).dt.strftime("%H:%M:%S")


def _verdict() -> pl.Expr:
    differing = pl.concat_str(
        [
            pl.when(~pl.col(c).eq_missing(pl.col(f"kept_{c}"))).then(pl.lit(c))
            for c in VALUE_COLUMNS
        ],
        separator=", ",
        ignore_nulls=True,
    )
    return (
        pl.when(differing == "")
        .then(pl.lit("values identical"))
        .otherwise(pl.format("values conflict ({})", differing))
    )


def find_duplicate_dates(rows: pl.DataFrame, competing: pl.Series) -> pl.DataFrame:
    """Rows losing a (symbol, date) contest, as ``position`` (UInt32) and ``detail``.

    ``rows`` are PARSED_SCHEMA rows; only those where ``competing`` is True (they passed
    every other rule) take part, so a broken row never claims a date. Within a
    (symbol, date) group the row whose ``time_of_day_s`` is smallest (null counts as 0)
    wins: a candle opening at 00:00 UTC covers exactly the canonical UTC day, one opening
    at 04:00 covers most of it, one at 13:00 mostly covers the next day. Ties go to the
    earliest ``line``, then the earliest position. The detail names the kept line, both
    candle times and whether the values conflict (listing the differing columns) or are
    identical.
    """
    # Hashing dates within each symbol is several times faster than hashing
    # (symbol, date) pairs; non-competing rows get a null date and are masked out after.
    claims = rows.select("symbol", "date", competing.alias("competing"))
    claimed_date = pl.when(pl.col("competing")).then(pl.col("date"))
    contested_mask = claims.select(
        claimed_date.is_duplicated().over("symbol") & pl.col("competing")
    ).to_series()
    contested = rows.with_row_index(POSITION).filter(contested_mask)
    ranked = contested.sort(
        ["symbol", "date", pl.col("time_of_day_s").fill_null(0), "line", POSITION]
    )
    winner = pl.struct("symbol", "date").is_first_distinct()
    kept = ranked.filter(winner).select(
        "symbol",
        "date",
        pl.col("line").alias("kept_line"),
        pl.col("time_of_day_s").alias("kept_time_s"),
        *[pl.col(c).alias(f"kept_{c}") for c in VALUE_COLUMNS],
    )
    losers = ranked.filter(~winner).join(kept, on=["symbol", "date"], how="left")
    return losers.select(
        POSITION,
        pl.format(
            "{}: {} {} at {} UTC duplicates line {} at {} UTC, kept as nearer 00:00 UTC; {}",
            pl.lit(DUPLICATE_DATE_RULE),
            pl.col("symbol"),
            pl.col("date").cast(pl.String),
            _clock(pl.col("time_of_day_s")),
            pl.col("kept_line").cast(pl.String),
            _clock(pl.col("kept_time_s")),
            _verdict(),
        ).alias("detail"),
    )
