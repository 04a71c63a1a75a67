"""Per-row price rules as polars expressions, defined once for pandera and for reporting.

Each rule is a pair of expressions over one canonical row: ``passes`` (True when the row
satisfies the rule, never null) and ``detail`` (text naming the values involved, only
meaningful on rows that fail). The pandera model in ``seqlab.schemas.prices`` runs the
``passes`` expressions; the quarantine report renders ``detail`` for the rows pandera
flagged. Sources often lack open/high/low, so a rule only judges the values present.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

# Relative slack on OHLC comparisons: float32-derived sources (Kaggle) carry noise such as
# high=2.7988100051879883 vs close=2.798810005187988, which must not quarantine good rows.
OHLC_REL_TOLERANCE = 1e-9

OPTIONAL_PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low")
AMOUNT_COLUMNS: tuple[str, ...] = ("volume", "volume_base", "market_cap")


@dataclass(frozen=True)
class ValueLimits:
    """Upper bounds beyond which a value is a unit or typing error, not a market price.

    ETH's all-time high is under 5e3 USD and its largest daily volume and market cap under
    1e12 USD, so the defaults leave room for any asset quoted in USD while still stopping
    ``1e308`` (which passes every other rule and makes training diverge). Both are
    exclusive; override them with ``SEQLAB_MAX_PRICE`` and ``SEQLAB_MAX_AMOUNT`` (read and
    checked by seqlab.config).
    """

    max_price: float = 1e9  # open/high/low/close, quote currency
    max_amount: float = 1e15  # volume, volume_base, market_cap

    def __post_init__(self) -> None:
        for name in ("max_price", "max_amount"):
            value = getattr(self, name)
            if not (value > 0 and value < float("inf")):
                raise ValueError(f"{name} must be a finite number above 0, not {value!r}")


@dataclass(frozen=True)
class RowRule:
    """One named row rule: ``passes`` is True on good rows, ``detail`` explains a failure."""

    name: str
    passes: pl.Expr
    detail: pl.Expr


def _text(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.String).fill_null("null")


def _at_least(larger: pl.Expr, smaller: pl.Expr) -> pl.Expr:
    """``larger >= smaller`` within the relative tolerance; null (a value absent) passes."""
    slack = OHLC_REL_TOLERANCE * pl.max_horizontal(larger.abs(), smaller.abs())
    return (larger >= smaller - slack).fill_null(True)


def _is_positive_price(column: str) -> pl.Expr:
    value = pl.col(column)
    return (value > 0) & value.is_finite()


def _is_valid_amount(column: str) -> pl.Expr:
    value = pl.col(column)
    # NaN compares greater than every number in polars, so ">= 0" alone would accept it.
    return ((value >= 0) & value.is_finite()).fill_null(True)


def _list_failing(columns: tuple[str, ...], fails: dict[str, pl.Expr]) -> pl.Expr:
    parts = [pl.when(fails[c]).then(pl.format("{}={}", pl.lit(c), _text(c))) for c in columns]
    return pl.concat_str(parts, separator=", ", ignore_nulls=True)


def _non_positive_price() -> RowRule:
    fails = {c: ~_is_positive_price(c).fill_null(True) for c in OPTIONAL_PRICE_COLUMNS}
    # close is the one price every source has: a missing close is as bad as a zero one.
    fails["close"] = ~_is_positive_price("close").fill_null(False)
    columns = (*OPTIONAL_PRICE_COLUMNS, "close")
    return RowRule(
        name="non_positive_price",
        passes=~pl.any_horizontal(fails.values()),
        detail=_list_failing(columns, fails),
    )


def _negative_volume() -> RowRule:
    fails = {c: ~_is_valid_amount(c) for c in AMOUNT_COLUMNS}
    return RowRule(
        name="negative_volume",
        passes=~pl.any_horizontal(fails.values()),
        detail=_list_failing(AMOUNT_COLUMNS, fails),
    )


def _above_limit(name: str, columns: tuple[str, ...], limit: float) -> RowRule:
    # Absent values pass; NaN and inf are the two rules above's to name.
    fails = {c: (pl.col(c) >= limit).fill_null(False) & pl.col(c).is_finite() for c in columns}
    return RowRule(
        name=name,
        passes=~pl.any_horizontal(fails.values()),
        detail=pl.concat_str(
            _list_failing(columns, fails), pl.lit(f" (limit {limit:g})"), ignore_nulls=False
        ),
    )


def _high_below_low() -> RowRule:
    return RowRule(
        name="high_below_low",
        passes=_at_least(pl.col("high"), pl.col("low")),
        detail=pl.format("high={} < low={}", _text("high"), _text("low")),
    )


def _low_above_open_close() -> RowRule:
    return RowRule(
        name="low_above_open_close",
        passes=_at_least(pl.min_horizontal("open", "close"), pl.col("low")),
        detail=pl.format(
            "low={} > min(open={}, close={})", _text("low"), _text("open"), _text("close")
        ),
    )


def _high_below_open_close() -> RowRule:
    return RowRule(
        name="high_below_open_close",
        passes=_at_least(pl.col("high"), pl.max_horizontal("open", "close")),
        detail=pl.format(
            "high={} < max(open={}, close={})", _text("high"), _text("open"), _text("close")
        ),
    )


def build_price_rules(limits: ValueLimits = ValueLimits()) -> tuple[RowRule, ...]:
    """The date-independent rules, in reporting priority order."""
    prices = (*OPTIONAL_PRICE_COLUMNS, "close")
    return (
        _non_positive_price(),
        _negative_volume(),
        _above_limit("price_above_limit", prices, limits.max_price),
        _above_limit("amount_above_limit", AMOUNT_COLUMNS, limits.max_amount),
        _high_below_low(),
        _low_above_open_close(),
        _high_below_open_close(),
    )


def build_future_date_rule(today: dt.date) -> RowRule:
    """Rows dated after ``today`` cannot be observed prices yet."""
    return RowRule(
        name="future_date",
        passes=(pl.col("date") <= pl.lit(today)).fill_null(True),
        detail=pl.format("date={} > today={}", _text("date"), pl.lit(today.isoformat())),
    )


# No market priced a cryptocurrency before Bitcoin's first block (2009-01-03): an earlier date
# is a typing or parsing error (year 0001 beside real prices made a 735,817-day gap that the
# dataset checks only warned about), quarantined like a future one.
EARLIEST_PRICE_DATE = dt.date(2009, 1, 3)


def build_early_date_rule(earliest: dt.date = EARLIEST_PRICE_DATE) -> RowRule:
    """Rows dated before ``earliest`` cannot be prices of a traded crypto asset."""
    return RowRule(
        name="date_before_earliest",
        passes=(pl.col("date") >= pl.lit(earliest)).fill_null(True),
        detail=pl.format("date={} < earliest={}", _text("date"), pl.lit(earliest.isoformat())),
    )


def build_row_rules(
    today: dt.date, limits: ValueLimits = ValueLimits()
) -> tuple[RowRule, ...]:
    """Every per-row rule, in priority order (the first broken one is a row's primary rule)."""
    return (*build_price_rules(limits), build_future_date_rule(today), build_early_date_rule())


DUPLICATE_DATE_RULE = "duplicate_date"
