"""Vectorized polars expressions that turn source text fields into numbers.

Builders return NULL where the text cannot be read, so the caller can tell "could not
parse" (reject) from "was empty" (NULL value, see is_null_token).
Fields arrive without surrounding whitespace (the caller strips padded files once).
"""

from __future__ import annotations

import polars as pl

# Text that stands for "no value" in the wild (pandas, Yahoo, Investing's "-").
NULL_TOKENS: tuple[str, ...] = (
    "",
    "null",
    "NULL",
    "Null",
    "None",
    "none",
    "NaN",
    "nan",
    "NAN",
    "N/A",
    "n/a",
    "NA",
    "na",
    "-",
)

_THOUSANDS_PATTERN = r"^[+-]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?$"
_SUFFIXED_PATTERN = r"^([+-]?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?) ?([KkMmBbTt]?)$"
_SUFFIX_FACTORS = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def is_null_token(text: pl.Expr) -> pl.Expr:
    """True where a field is missing or holds one of the usual "no value" spellings."""
    return text.is_null() | text.is_in(NULL_TOKENS)


def parse_number(text: pl.Expr, number_format: str = "plain") -> pl.Expr:
    """Float64 from text; NULL where the text is not a finite number in ``number_format``.

    ``plain`` is what a CSV writer emits (``1234.5``, ``1e9``); ``thousands`` also accepts comma
    digit grouping (``2,780.30``); ``suffixed`` further accepts a K/M/B/T multiplier (``1.33M``).
    A value such as ``24.058.575.219.728`` (Excel's dot grouping) matches none of them.
    """
    if number_format == "plain":
        value = text.cast(pl.Float64, strict=False)
    elif number_format == "thousands":
        value = (
            pl.when(text.str.contains(_THOUSANDS_PATTERN))
            .then(text.str.replace_all(",", "", literal=True))
            .cast(pl.Float64, strict=False)
        )
    elif number_format == "suffixed":
        parts = text.str.extract_groups(_SUFFIXED_PATTERN)
        mantissa = parts.struct.field("1").str.replace_all(",", "", literal=True)
        factor = (
            parts.struct.field("2")
            .str.to_uppercase()
            .replace_strict(_SUFFIX_FACTORS, return_dtype=pl.Float64, default=None)
        )
        value = mantissa.cast(pl.Float64, strict=False) * factor
    else:
        raise ValueError(f"unknown number format {number_format!r}")
    # NaN and inf parse as floats but are not prices; treat them as unreadable.
    return pl.when(value.is_finite()).then(value)
