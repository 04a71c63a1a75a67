"""Row validation of parsed prices: pandera (polars backend) types and rules, plus quarantine.

The row rules live once, as polars expressions, in ``seqlab.schemas.row_rules``. The pandera
model below runs them as checks; ``validate_rows`` validates lazily (every failure
collected), maps pandera's failure cases back to rows by their index, names every broken
rule per row, then settles duplicate dates among the rows that passed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.config import ValidationDepth, config_context
from pandera.errors import SchemaErrors

from seqlab.schemas.canonical import CANONICAL_COLUMNS, PARSED_SCHEMA, REJECT_SCHEMA
from seqlab.schemas.duplicate_dates import POSITION, find_duplicate_dates
from seqlab.schemas.row_rules import (
    DUPLICATE_DATE_RULE,
    RowRule,
    ValueLimits,
    build_price_rules,
    build_row_rules,
)
from seqlab.schemas.symbols import SYMBOL_PATTERN

PRICE_RULES: tuple[RowRule, ...] = build_price_rules()  # at the default ValueLimits
_ROW = "_row"  # position of a row in the frame pandera validated


def _rule_outcome(data: PolarsData, name: str) -> pl.LazyFrame:
    rule = next(rule for rule in PRICE_RULES if rule.name == name)
    return data.lazyframe.select(rule.passes)


class CanonicalPrices(pa.DataFrameModel):
    """Canonical daily prices: strict types (coerced), one row per (symbol, date).

    The row rules are attached to ``date`` (the row's key) but judge the whole row. Keyed
    on one column, pandera reports each failure case as that row's date plus its index;
    a frame-wide check makes pandera convert every failing row to Python objects, which
    takes ~7 s for 1M failing rows instead of ~0.4 s.
    """

    symbol: str = pa.Field(nullable=False, str_matches=SYMBOL_PATTERN)
    date: dt.date = pa.Field(nullable=False)
    open: float = pa.Field(nullable=True)
    high: float = pa.Field(nullable=True)
    low: float = pa.Field(nullable=True)
    close: float = pa.Field(nullable=True)  # a null close fails non_positive_price instead
    volume: float = pa.Field(nullable=True)
    market_cap: float = pa.Field(nullable=True)
    volume_base: float = pa.Field(nullable=True)

    class Config:
        strict = True
        coerce = True
        unique = ["symbol", "date"]

    @pa.check("date", name="non_positive_price", ignore_na=False)
    def check_positive_prices(cls, data: PolarsData) -> pl.LazyFrame:
        """open/high/low/close > 0 and finite where present; close present."""
        return _rule_outcome(data, "non_positive_price")

    @pa.check("date", name="negative_volume", ignore_na=False)
    def check_amounts(cls, data: PolarsData) -> pl.LazyFrame:
        """volume, volume_base, market_cap >= 0 and finite where present."""
        return _rule_outcome(data, "negative_volume")

    @pa.check("date", name="price_above_limit", ignore_na=False)
    def check_price_limit(cls, data: PolarsData) -> pl.LazyFrame:
        """open/high/low/close below ValueLimits.max_price where present."""
        return _rule_outcome(data, "price_above_limit")

    @pa.check("date", name="amount_above_limit", ignore_na=False)
    def check_amount_limit(cls, data: PolarsData) -> pl.LazyFrame:
        """volume, volume_base, market_cap below ValueLimits.max_amount where present."""
        return _rule_outcome(data, "amount_above_limit")

    @pa.check("date", name="high_below_low", ignore_na=False)
    def check_high_low(cls, data: PolarsData) -> pl.LazyFrame:
        """high >= low (relative tolerance 1e-9)."""
        return _rule_outcome(data, "high_below_low")

    @pa.check("date", name="low_above_open_close", ignore_na=False)
    def check_low_bound(cls, data: PolarsData) -> pl.LazyFrame:
        """low <= min(open, close) (relative tolerance 1e-9)."""
        return _rule_outcome(data, "low_above_open_close")

    @pa.check("date", name="high_below_open_close", ignore_na=False)
    def check_high_bound(cls, data: PolarsData) -> pl.LazyFrame:
        """high >= max(open, close) (relative tolerance 1e-9)."""
        return _rule_outcome(data, "high_below_open_close")


@dataclass
class RowValidation:
    """Rows split into stored and quarantined; ``rows.height == valid + quarantined``."""

    valid: pl.DataFrame  # CANONICAL_COLUMNS + line, one row per (symbol, date)
    quarantined: pl.DataFrame  # REJECT_SCHEMA: line, raw, rule, detail


def _as_check(rule: RowRule) -> pa.Check:
    return pa.Check(
        lambda data: data.lazyframe.select(rule.passes), name=rule.name, ignore_na=False
    )


def build_row_schema(
    today: dt.date, limits: ValueLimits = ValueLimits()
) -> pa.DataFrameSchema:
    """CanonicalPrices with its row rules at ``limits`` plus the date rules,
    without the uniqueness constraint.

    Uniqueness is left out because duplicate dates are settled afterwards, among the rows
    that pass every other rule, rather than rejected wholesale.
    """
    checks = [_as_check(rule) for rule in build_row_rules(today, limits)]
    schema = CanonicalPrices.to_schema().update_column("date", checks=checks)
    schema.unique = None
    return schema


def _find_broken_rules(
    schema: pa.DataFrameSchema, rule_names: list[str], typed: pl.DataFrame
) -> pl.DataFrame:
    """Run pandera lazily; one row per failing row position (ascending), a flag per rule."""
    flags = {name: pl.Boolean() for name in rule_names}
    try:
        with config_context(
            validation_enabled=True, validation_depth=ValidationDepth.SCHEMA_AND_DATA
        ):
            schema.validate(typed.select(CANONICAL_COLUMNS), lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        foreign = cases.filter(~pl.col("check").is_in(rule_names))
        if not foreign.is_empty():
            raise ValueError(
                f"parsed rows break the canonical schema itself (a parser bug): "
                f"{_describe(foreign, typed.get_column('line'))}"
            ) from errors
        return (
            cases.group_by(pl.col("index").cast(pl.UInt32).alias(_ROW))
            .agg([(pl.col("check") == name).any().alias(name) for name in rule_names])
            .sort(_ROW)
        )
    return pl.DataFrame(schema={_ROW: pl.UInt32(), **flags})


def _describe(cases: pl.DataFrame, lines: pl.Series) -> str:
    found = []
    for column, check, index in cases.head(5).select("column", "check", "index").iter_rows():
        where = "" if index is None else f" at line {lines[index]}"
        found.append(f"column {column!r} failed {check}{where}")
    more = f" (+{cases.height - 5} more)" if cases.height > 5 else ""
    return "; ".join(found) + more


def _gather(rows: pl.DataFrame, positions: pl.Series) -> pl.DataFrame:
    return rows.select(pl.all().gather(positions))


def _rule_rejects(
    typed: pl.DataFrame, broken: pl.DataFrame, rules: tuple[RowRule, ...]
) -> pl.DataFrame:
    failed = pl.concat([_gather(typed, broken.get_column(_ROW)), broken], how="horizontal")
    return failed.select(
        _ROW,
        "line",
        "raw",
        pl.coalesce([pl.when(pl.col(r.name)).then(pl.lit(r.name)) for r in rules]).alias("rule"),
        pl.concat_str(
            [
                pl.when(pl.col(r.name)).then(pl.format("{}: {}", pl.lit(r.name), r.detail))
                for r in rules
            ],
            separator="; ",
            ignore_nulls=True,
        ).alias("detail"),
    )


def _mask(height: int, positions: pl.Series) -> pl.Series:
    return pl.repeat(False, height, eager=True).scatter(positions, True)


def validate_rows(
    rows: pl.DataFrame, *, today: dt.date | None = None, limits: ValueLimits = ValueLimits()
) -> RowValidation:
    """Split parsed rows (PARSED_SCHEMA) into valid canonical rows and quarantined rejects.

    Rules, in priority order: non_positive_price, negative_volume, price_above_limit and
    amount_above_limit (``limits``), high_below_low, low_above_open_close,
    high_below_open_close, future_date (date > ``today``, default today in UTC),
    date_before_earliest (date < 2009-01-03, before any crypto price), duplicate_date. A row breaking several rules is quarantined once: ``rule``
    is the first broken rule, ``detail`` lists every broken rule with the values involved.
    Duplicate dates: among rows sharing (symbol, date) that passed the other rules, the
    one whose ``time_of_day_s`` is smallest, i.e. nearest after 00:00 UTC (null = 0), is
    kept, ties to the earliest line; the others are quarantined as duplicate_date naming
    the kept line and whether values conflicted or were identical (see
    ``seqlab.schemas.duplicate_dates``). Both outputs keep the input row order.
    Raises ValueError when ``rows`` does not fit PARSED_SCHEMA (missing column, type, or a
    null symbol/date): that is a parser bug, not a bad price.
    """
    missing = [name for name in PARSED_SCHEMA if name not in rows.columns]
    if missing:
        raise ValueError(f"parsed rows lack column(s) {missing}; expected PARSED_SCHEMA")
    try:
        typed = rows.select(list(PARSED_SCHEMA)).cast(PARSED_SCHEMA)
    except pl.exceptions.PolarsError as error:
        raise ValueError(f"parsed rows do not fit PARSED_SCHEMA types: {error}") from error

    today = today or dt.datetime.now(dt.UTC).date()
    rules = build_row_rules(today, limits)
    schema = build_row_schema(today, limits)
    broken = _find_broken_rules(schema, [r.name for r in rules], typed)
    failing = _mask(typed.height, broken.get_column(_ROW))
    losers = find_duplicate_dates(typed, ~failing).rename({POSITION: _ROW})
    rejected = failing | _mask(typed.height, losers.get_column(_ROW))

    # Only the (usually few) rejected rows are gathered with their raw text.
    rule_rejects = _rule_rejects(typed, broken, rules)
    duplicate_rejects = pl.concat(
        [_gather(typed.select("line", "raw"), losers.get_column(_ROW)), losers], how="horizontal"
    ).select(_ROW, "line", "raw", pl.lit(DUPLICATE_DATE_RULE).alias("rule"), "detail")
    quarantined = (
        pl.concat([rule_rejects, duplicate_rejects]).sort(_ROW).drop(_ROW).cast(REJECT_SCHEMA)
    )
    valid = typed.select(*CANONICAL_COLUMNS, "line")
    if rejected.any():
        valid = valid.filter(~rejected)
    if valid.height + quarantined.height != rows.height:
        raise RuntimeError(
            f"row accounting broke: {rows.height} read != {valid.height} valid + "
            f"{quarantined.height} quarantined"
        )
    return RowValidation(valid=valid, quarantined=quarantined)
