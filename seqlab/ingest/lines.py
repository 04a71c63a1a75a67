"""Splitting a CSV file's bytes into physical lines and fields.

Two reads of the same bytes keep every data line accounted for: one returns each physical
line verbatim (blank lines become NULL, so line numbers stay exact) as string views into the
file's own bytes, the other splits the same lines into fields with polars' native CSV reader
(honouring quotes). Both yield one row per physical line.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_LF, _CR = 0x0A, 0x0D
_SCAN_BYTES = 1 << 22
_INLINE_BYTES = 12  # Arrow string views keep strings up to 12 bytes inside the view
_INLINE_CHUNK_ROWS = 1 << 18
_MAX_VIEW_BYTES = 2**31 - 1  # view offsets are int32
HEAD_BYTES = 64 * 1024  # what layout detection reads
# Bytes that never occur in text CSVs; one of them serves as a "separator" that never splits.
_UNUSED_BYTES = ("\x1f", "\x1e", "\x1d", "\x1c", "\x01")


def decode_utf16(data: bytes) -> bytes:
    """UTF-16 text with a byte order mark (Excel's "Unicode text") as UTF-8; other bytes as
    they are. Everything after this splits lines at the byte ``\\n``, which UTF-16 spreads
    over two bytes.
    """
    if data[:2] in _UTF16_BOMS:
        return data.decode("utf-16", errors="replace").encode("utf-8")
    return data


def normalize_line_ends(data: bytes) -> bytes:
    """Turn classic-Mac lone ``\\r`` line ends into ``\\n``; ``\\r\\n`` the reader handles itself."""
    if b"\n" not in data and b"\r" in data:
        return data.replace(b"\r", b"\n")
    return data


def read_head_lines(data: bytes) -> list[str]:
    """The first lines of the file as text (BOM and line ends removed) for layout detection."""
    head = data[:HEAD_BYTES].removeprefix(_BOM).decode("utf-8", errors="replace")
    lines = head.split("\n")
    if len(data) > HEAD_BYTES:
        lines = lines[:-1]  # the last piece may be cut mid-line
    return [line.removesuffix("\r") for line in lines]


def read_lines(data: bytes, skip_lines: int) -> pl.Series:
    """Every physical line after ``skip_lines`` as text; blank lines are NULL.

    A final line end does not start another line, matching how editors count lines; one
    ``\\r`` before a line end belongs to the line end. The lines are Arrow string views into
    ``data`` itself, so a big file's text is held once, not twice. A file that is not valid
    UTF-8 is read by polars' reader instead, which replaces invalid bytes with U+FFFD.
    """
    if len(data) <= _MAX_VIEW_BYTES:
        try:
            return _line_views(data, skip_lines)
        except pa.ArrowInvalid:  # not UTF-8: only a copying, lenient decoder can read it
            pass
    return _read_lines_lossy(data, skip_lines)


def _line_bounds(buffer: np.ndarray, skip_lines: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop byte offsets of the lines after ``skip_lines``, line ends excluded."""
    first = len(_BOM) if buffer[: len(_BOM)].tobytes() == _BOM else 0
    ends = [np.empty(0, dtype=np.int64)]
    for offset in range(first, len(buffer), _SCAN_BYTES):  # in slices: small temporaries
        ends.append(np.flatnonzero(buffer[offset : offset + _SCAN_BYTES] == _LF) + offset)
    line_ends = np.concatenate(ends)
    starts = np.concatenate(([first], line_ends + 1))[skip_lines:]
    stops = np.append(line_ends, len(buffer))[skip_lines:]
    if skip_lines and len(starts) and buffer[starts[0] : starts[0] + 3].tobytes() == _BOM:
        starts[0] += len(_BOM)  # as polars' reader does, a BOM after the skipped lines goes
    if len(starts) and starts[-1] == len(buffer):  # a final line end starts no other line
        starts, stops = starts[:-1], stops[:-1]
    ends_with_cr = (stops > starts) & (buffer[np.maximum(stops - 1, 0)] == _CR)
    return starts, stops - ends_with_cr


def _line_views(data: bytes, skip_lines: int) -> pl.Series:
    """The lines as an Arrow string view array over ``data`` (no copy of the text)."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    starts, stops = _line_bounds(buffer, skip_lines)
    lengths = stops - starts
    # Arrow's view layout, 16 bytes per string: length, then either the string itself (up to
    # 12 bytes, zero padded) or its first 4 bytes, buffer index and offset.
    views = np.zeros((len(starts), 4), dtype=np.int32)
    views[:, 0] = lengths
    if len(buffer) >= 4:  # written for every line, then overwritten where inline
        words = np.ndarray((len(buffer) - 3,), dtype="<u4", buffer=data, strides=(1,))
        views[:, 1] = words[np.minimum(starts, len(buffer) - 4)].view(np.int32)
        views[:, 3] = starts
    short = np.flatnonzero(lengths <= _INLINE_BYTES)
    inline = views.view(np.uint8).reshape(-1, 16)[:, 4:]
    places = np.arange(_INLINE_BYTES)
    for offset in range(0, len(short), _INLINE_CHUNK_ROWS):
        rows = short[offset : offset + _INLINE_CHUNK_ROWS]
        positions = np.minimum(starts[rows, None] + places, len(buffer) - 1)
        inline[rows] = np.where(places < lengths[rows, None], buffer[positions], 0)
    present = lengths > 0
    nulls = len(present) - int(np.count_nonzero(present))
    validity = pa.py_buffer(np.packbits(present, bitorder="little")) if nulls else None
    array = pa.StringViewArray.from_buffers(
        pa.string_view(),
        len(starts),
        [validity, pa.py_buffer(views), pa.py_buffer(data)],
        null_count=nulls,
    )
    if not data.isascii():  # ASCII is UTF-8; polars would take invalid UTF-8 as it is
        array.validate(full=True)
    return pl.Series("raw", array)


def _read_lines_lossy(data: bytes, skip_lines: int) -> pl.Series:
    """read_lines through polars' CSV reader with a separator that never splits."""
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
