"""The canonical daily price schema every source layout is mapped onto."""

from __future__ import annotations

import polars as pl

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "market_cap")
# Kept from sources that report it: traded volume in the base currency (ETH). ``volume``
# is always quote-currency (USD) volume; a source giving only base volume leaves it NULL
# rather than inventing a USD figure.
EXTRA_COLUMNS: tuple[str, ...] = ("volume_base",)
CANONICAL_COLUMNS: tuple[str, ...] = ("symbol", "date", *PRICE_COLUMNS, *EXTRA_COLUMNS)

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


def empty_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECT_SCHEMA)
