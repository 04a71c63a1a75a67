"""Splitting a CSV file's bytes into physical lines and fields with polars' native reader.

Two reads of the same bytes keep every data line accounted for: one returns each physical
line verbatim (blank lines become NULL, so line numbers stay exact), the other splits the
same lines into fields (honouring quotes). Both yield one row per physical line.
"""

from __future__ import annotations

import polars as pl

_BOM = b"\xef\xbb\xbf"
_HEAD_BYTES = 64 * 1024
# Bytes that never occur in text CSVs; one of them serves as a "separator" that never splits.
_UNUSED_BYTES = ("\x1f", "\x1e", "\x1d", "\x1c", "\x01")


def normalize_line_ends(data: bytes) -> bytes:
    """Turn classic-Mac lone ``\\r`` line ends into ``\\n``; ``\\r\\n`` the reader handles itself."""
    if b"\n" not in data and b"\r" in data:
        return data.replace(b"\r", b"\n")
    return data


def read_head_lines(data: bytes) -> list[str]:
    """The first lines of the file as text (BOM and line ends removed) for layout detection."""
    head = data[:_HEAD_BYTES].removeprefix(_BOM).decode("utf-8", errors="replace")
    lines = head.split("\n")
    if len(data) > _HEAD_BYTES:
        lines = lines[:-1]  # the last piece may be cut mid-line
    return [line.removesuffix("\r") for line in lines]


def read_lines(data: bytes, skip_lines: int) -> pl.Series:
    """Every physical line after ``skip_lines`` as text; blank lines are NULL.

    A final line end does not start another line, matching how editors count lines.
    """
    marker = next((byte for byte in _UNUSED_BYTES if byte.encode() not in data), None)
    if marker is None:
        raise ValueError("the file contains control bytes that text CSV files never hold")
    frame = pl.read_csv(
        data,
        has_header=False,
        separator=marker,
        quote_char=None,
        schema={"raw": pl.String},
        skip_lines=skip_lines,
        encoding="utf8-lossy",
        raise_if_empty=False,
    )
    return frame.to_series()


def count_fields(raw: pl.Expr, separator: str, quoted: bool) -> pl.Expr:
    """Number of fields in each line; separators inside double quotes do not count."""
    if quoted:
        raw = raw.str.replace_all(r'"[^"]*"', "")
    return raw.str.count_matches(separator, literal=True) + 1


def has_unbalanced_quotes(raw: pl.Expr) -> pl.Expr:
    """True where a line has an odd number of double quotes (a field left open)."""
    return raw.str.count_matches('"', literal=True).mod(2) == 1


def read_fields(
    data: bytes,
    separator: str,
    skip_lines: int,
    field_count: int,
    columns: dict[int, tuple[str, pl.DataType]],
) -> pl.DataFrame:
    """The fields in ``columns`` (0-based index -> output name, dtype) of every line after
    ``skip_lines``.

    Short lines give NULL for missing fields and long lines are cut, so the row count always
    equals the line count; callers reject such lines by their field count instead. Fields
    read as numbers are NULL where the text is not a number; callers look at the text of
    those lines again (read_texts) to tell junk from an empty cell.
    """
    names = [f"column_{index + 1}" for index in range(field_count)]
    schema: dict[str, pl.DataType] = dict.fromkeys(names, pl.String())
    for index, (_, dtype) in columns.items():
        schema[names[index]] = dtype
    frame = pl.read_csv(
        data,
        has_header=False,
        separator=separator,
        quote_char='"',
        schema=schema,
        columns=[names[index] for index in sorted(columns)],
        skip_lines=skip_lines,
        truncate_ragged_lines=True,
        missing_columns="insert",
        extra_columns="ignore",
        ignore_errors=True,
        encoding="utf8-lossy",
        raise_if_empty=False,
    )
    return frame.rename({names[index]: name for index, (name, _) in columns.items()})


def read_texts(
    raw: pl.Series, separator: str, field_count: int, columns: dict[int, str]
) -> pl.DataFrame:
    """The fields in ``columns`` (index -> output name) of the given lines, as text.

    The lines must be non-blank and have balanced quotes, so each yields exactly one row.
    """
    data = (raw.str.join("\n").item() + "\n").encode()
    text_columns = {index: (name, pl.String()) for index, name in columns.items()}
    return read_fields(data, separator, 0, field_count, text_columns)


def blank_out_lines(lines: pl.Series, keep: pl.Series) -> bytes:
    """Rebuild the text with lines where ``keep`` is False emptied.

    Used when a line opens a quote it never closes: the field reader would otherwise merge it
    with the following lines and the one-row-per-line correspondence would be lost.
    """
    kept = pl.select(pl.when(keep).then(lines).otherwise(pl.lit("")).fill_null(""))
    return (kept.to_series().str.join("\n").item() + "\n").encode()
