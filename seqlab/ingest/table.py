"""The per-line working table of one source: line number, raw text, fields and parsed values.

Columns: ``line``, ``raw`` (NULL for blank lines), ``fields_ok``, ``text_<column>`` (the
field as text), ``float_<column>`` (plain numeric fields read straight as numbers, which
saves memory and time on big files), ``date``, ``time_of_day_s`` and ``value_<column>``.
"""

from __future__ import annotations

import polars as pl

from seqlab.ingest import lines as text
from seqlab.ingest.dates import parse_dates
from seqlab.ingest.detect import DetectedLayout
from seqlab.ingest.values import parse_number
from seqlab.schemas.canonical import EXTRA_COLUMNS, PRICE_COLUMNS

VALUE_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, *EXTRA_COLUMNS)
# A hand-typed cross-check column (Excel-mangled CoinMarketCap exports), always comma-grouped.
CHECK_COLUMN = "close_price"
# Fields kept as text: the date, and the file's own symbol (compared, never stored).
TEXT_COLUMNS: tuple[str, ...] = ("date", "symbol")


def _number_format(detected: DetectedLayout, column: str) -> str:
    if column == CHECK_COLUMN:
        return "thousands"
    if column in detected.layout.suffixed:
        return "suffixed"
    return detected.layout.number_format


def _read_as_float(detected: DetectedLayout, column: str) -> bool:
    return (
        column not in TEXT_COLUMNS
        and not detected.padded
        and _number_format(detected, column) == "plain"
    )


def build_table(data: bytes, detected: DetectedLayout, quoted: bool) -> pl.DataFrame:
    """Lines and fields of every data line, one row per physical line."""
    raw = text.read_lines(data, detected.skip_lines)
    field_data, skip = data, detected.skip_lines
    fields_ok = text.count_fields(pl.col("raw"), detected.separator, quoted) == detected.field_count
    if quoted:
        unbalanced = raw.to_frame().select(
            text.has_unbalanced_quotes(pl.col("raw")).fill_null(False)
        )
        if unbalanced.to_series().any():
            # An unclosed quote would make the CSV reader swallow the following lines.
            field_data, skip = text.blank_out_lines(raw, ~unbalanced.to_series()), 0
            fields_ok = fields_ok & ~text.has_unbalanced_quotes(pl.col("raw"))
    wanted = {
        index: (f"float_{column}", pl.Float64())
        if _read_as_float(detected, column)
        else (f"text_{column}", pl.String())
        for column, index in detected.columns.items()
    }
    fields = text.read_fields(field_data, detected.separator, skip, detected.field_count, wanted)
    if fields.height != raw.len():
        raise ValueError(f"{fields.height} field rows for {raw.len()} lines")
    if detected.padded:
        fields = fields.with_columns(pl.col(pl.String).str.strip_chars())
    frame = pl.concat(
        [raw.to_frame("raw").with_row_index("line", offset=detected.skip_lines + 1), fields],
        how="horizontal",
    )
    return frame.with_columns(pl.col("line").cast(pl.Int64), fields_ok.alias("fields_ok"))


def add_values(frame: pl.DataFrame, detected: DetectedLayout) -> pl.DataFrame:
    """Add ``date``, ``time_of_day_s`` and ``value_<column>`` (NULL where absent/unreadable)."""
    values: dict[str, pl.Expr] = {}
    for column in (*VALUE_COLUMNS, CHECK_COLUMN):
        if column not in detected.columns:
            values[f"value_{column}"] = pl.lit(None, dtype=pl.Float64)
        elif _read_as_float(detected, column):
            number = pl.col(f"float_{column}")
            if frame.get_column(f"float_{column}").is_finite().all(ignore_nulls=True):
                values[f"value_{column}"] = number  # no NaN/inf: reuse the column, no copy
            else:
                values[f"value_{column}"] = pl.when(number.is_finite()).then(number)
        else:
            number_format = _number_format(detected, column)
            values[f"value_{column}"] = parse_number(pl.col(f"text_{column}"), number_format)
    dates = parse_dates(frame.get_column("text_date"), detected.date_format)
    return (
        frame.hstack(dates.get_columns())
        .with_columns(**values)
        .drop(pl.selectors.starts_with("float_"))
    )


def add_suspect_texts(frame: pl.DataFrame, detected: DetectedLayout) -> pl.DataFrame:
    """Add ``text_<column>`` for fields that were read as numbers.

    Only lines where such a field came out NULL get their text (read again from the raw
    line); the reject rules need it to tell an empty cell from junk like ``24.058.575``.
    """
    floats = [c for c in detected.columns if _read_as_float(detected, c)]
    if not floats:
        return frame
    suspect = (
        pl.col("raw").is_not_null()
        & pl.col("fields_ok")
        & pl.any_horizontal([pl.col(f"value_{c}").is_null() for c in floats])
    )
    positions = frame.select(pl.arg_where(suspect)).to_series()
    if positions.len() == 0:
        return frame.with_columns(pl.lit(None, dtype=pl.String).alias(f"text_{c}") for c in floats)
    texts = text.read_texts(
        frame.get_column("raw").gather(positions),
        detected.separator,
        detected.field_count,
        {detected.columns[c]: f"text_{c}" for c in floats},
    )
    if texts.height != positions.len():
        raise ValueError(f"{texts.height} text rows for {positions.len()} suspect lines")
    return frame.with_columns(
        pl.repeat(None, frame.height, dtype=pl.String, eager=True)
        .scatter(positions, texts.get_column(f"text_{c}"))  # fresh series: scatter is in place
        .alias(f"text_{c}")
        for c in floats
    )
