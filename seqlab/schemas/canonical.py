"""The canonical daily price schema every source layout is mapped onto."""

from __future__ import annotations

import polars as pl

from seqlab.schemas.columns import CANONICAL_COLUMNS, EXTRA_COLUMNS, PRICE_COLUMNS

__all__ = ["CANONICAL_COLUMNS", "CANONICAL_SCHEMA", "EXTRA_COLUMNS", "PARSED_SCHEMA",
           "PRICE_COLUMNS", "PROVENANCE_SCHEMA", "REJECT_SCHEMA"]

CANONICAL_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "date": pl.Date(),
    **{name: pl.Float64() for name in (*PRICE_COLUMNS, *EXTRA_COLUMNS)},
}

# Columns that travel with parsed rows so a quarantined row can be traced back to its file.
PROVENANCE_SCHEMA: dict[str, pl.DataType] = {
    "line": pl.Int64(),  # 1-based physical line number in the source file
    "raw": pl.String(),  # the row's original text
    "time_of_day_s": pl.Int32(),  # seconds after UTC midnight of the source timestamp, null if date-only
}

PARSED_SCHEMA: dict[str, pl.DataType] = {**CANONICAL_SCHEMA, **PROVENANCE_SCHEMA}

# Rows refused anywhere on the data path share this shape.
REJECT_SCHEMA: dict[str, pl.DataType] = {
    "line": pl.Int64(),
    "raw": pl.String(),
    "rule": pl.String(),
    "detail": pl.String(),
}
