"""Row-level reject rules for parsed source lines, and their human-readable details.

The rules run in a fixed order and a line is charged with the first one it breaks:
empty_line, wrong_field_count, null_row, unparseable_date, unparseable_number, missing_value,
close_mismatch.

A number column the layout has must hold a number on every line (missing_value): only a
column the layout lacks is NULL. A stored NULL in, say, ``open`` would silently drop that
column from the ``all`` feature set for the whole series.
"""

from __future__ import annotations

import polars as pl

from seqlab.ingest import lines as text
from seqlab.ingest.detect import DetectedLayout
from seqlab.ingest.values import is_null_token

CLOSE_TOLERANCE = 0.01  # close vs a hand-typed close_price: beyond 1% one of them is mangled
NUMBER_FIELDS: tuple[str, ...] = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "market_cap",
    "volume_base",
    "close_price",
)


def field(column: str) -> pl.Expr:
    """The text of the field that holds ``column`` (see table.py)."""
    return pl.col(f"text_{column}")


def value(column: str) -> pl.Expr:
    """The parsed number for ``column`` (NULL where absent or unreadable)."""
    return pl.col(f"value_{column}")


def number_columns(detected: DetectedLayout) -> list[str]:
    return [column for column in NUMBER_FIELDS if column in detected.columns]


def _unreadable(column: str) -> pl.Expr:
    """True where a number field holds text that is neither a number nor a null marker.

    ``value`` is tested first: where it parsed, the text may be absent (see table.py).
    """
    return value(column).is_null() & ~is_null_token(field(column))


def _missing(column: str) -> pl.Expr:
    """True where a number field is empty or holds a null marker (``n/a``, ``-``, ...)."""
    return value(column).is_null() & is_null_token(field(column))


def _close_mismatch() -> pl.Expr:
    close, close_price = value("close"), value("close_price")
    return ((close - close_price).abs() > CLOSE_TOLERANCE * close_price.abs()).fill_null(False)


def _rule_conditions(detected: DetectedLayout) -> list[tuple[str, pl.Expr]]:
    """Each rule with the condition (never null) under which a line breaks it, in order."""
    numbers = number_columns(detected)
    missing = [_missing(column) for column in numbers]
    conditions = [
        ("empty_line", pl.col("raw").is_null()),
        ("wrong_field_count", ~pl.col("fields_ok")),
        ("null_row", pl.all_horizontal(missing) if missing else pl.lit(False)),
        ("unparseable_date", pl.col("date").is_null()),
        ("unparseable_number", pl.any_horizontal([_unreadable(column) for column in numbers])),
        ("missing_value", pl.any_horizontal(missing) if missing else pl.lit(False)),
    ]
    if "close_price" in detected.columns and "close" in detected.columns:
        conditions.append(("close_mismatch", _close_mismatch()))
    return [(rule, condition.fill_null(False)) for rule, condition in conditions]


def is_rejected(detected: DetectedLayout) -> pl.Expr:
    """True where a line breaks any rule (``reject_rule`` is not NULL), as a mask.

    Lets the caller name the rule on the rejected lines only: a full-length column of rule
    names costs more time and memory than all the checks together on big clean files.
    """
    return pl.any_horizontal([condition for _, condition in _rule_conditions(detected)])


def may_be_rejected(detected: DetectedLayout) -> pl.Expr:
    """A cheap superset of ``is_rejected``: every rule needs a blank line, a wrong field
    count, a missing date or number, or (with ``close_price``) a close to compare.

    Telling an empty cell from junk text (``is_null_token``) costs a string lookup per field;
    this mask lets the caller pay it on the few lines where a value is missing.
    """
    needs = [
        pl.col("raw").is_null(),
        ~pl.col("fields_ok"),
        pl.col("date").is_null(),
        *[value(column).is_null() for column in number_columns(detected)],
    ]
    if "close_price" in detected.columns and "close" in detected.columns:
        needs.append(_close_mismatch())
    return pl.any_horizontal(needs).fill_null(True)


def reject_rule(detected: DetectedLayout) -> pl.Expr:
    """The first rule each line breaks, NULL for lines that parsed cleanly.

    Expects the columns of table.py: ``raw``, ``fields_ok``, ``date``, ``text_<column>`` and
    ``value_<column>``.
    """
    (first, condition), *others = _rule_conditions(detected)
    rule = pl.when(condition).then(pl.lit(first))
    for name, condition in others:
        rule = rule.when(condition).then(pl.lit(name))
    return rule.otherwise(pl.lit(None, dtype=pl.String)).alias("rule")


def _quoted(text_value: pl.Expr) -> pl.Expr:
    return pl.concat_str(pl.lit("'"), text_value.fill_null(""), pl.lit("'"))


def reject_detail(detected: DetectedLayout, quoted: bool) -> pl.Expr:
    """What exactly was wrong, naming the column and the offending text.

    Meant for the rejected lines only (it recounts fields, which the hot path avoids).
    """
    names = detected.source_names
    number_detail = pl.concat_str(
        [
            pl.when(_unreadable(column)).then(
                pl.concat_str(
                    pl.lit(f"{column} ({names[column]}) is not a number: "),
                    _quoted(field(column)),
                )
            )
            for column in number_columns(detected)
        ],
        separator="; ",
        ignore_nulls=True,
    )
    missing_detail = pl.concat_str(
        [
            pl.when(_missing(column)).then(
                pl.concat_str(
                    pl.lit(f"{column} ({names[column]}) is empty: "), _quoted(field(column))
                )
            )
            for column in number_columns(detected)
        ],
        separator="; ",
        ignore_nulls=True,
    )
    field_count = text.count_fields(pl.col("raw"), detected.separator, quoted)
    count_detail = pl.concat_str(
        pl.lit(f"expected {detected.field_count} fields, found "), field_count.cast(pl.String)
    )
    mismatch_detail = pl.concat_str(
        pl.lit("close "),
        value("close").cast(pl.String),
        pl.lit(f" differs from close_price by more than {CLOSE_TOLERANCE:.0%}: "),
        value("close_price").cast(pl.String),
    )
    rule = pl.col("rule")
    return (
        pl.when(rule == "empty_line")
        .then(pl.lit("blank line among data rows"))
        .when((rule == "wrong_field_count") & text.has_unbalanced_quotes(pl.col("raw")))
        .then(pl.lit("a double quote is opened and never closed"))
        .when(rule == "wrong_field_count")
        .then(count_detail)
        .when(rule == "null_row")
        .then(pl.lit("all values are empty or null"))
        .when(rule == "unparseable_date")
        .then(
            pl.concat_str(
                pl.lit(f"date ({names['date']}, {detected.date_format}) is not a date: "),
                _quoted(field("date")),
            )
        )
        .when(rule == "unparseable_number")
        .then(number_detail)
        .when(rule == "missing_value")
        .then(missing_detail)
        .when(rule == "close_mismatch")
        .then(mismatch_detail)
        .otherwise(pl.lit(None, dtype=pl.String))
        .alias("detail")
    )
