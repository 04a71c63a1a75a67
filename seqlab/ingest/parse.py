"""Parse one raw source into canonical rows plus the lines that could not be parsed.

Every physical data line ends up in exactly one of ``rows`` or ``rejects`` (with the first
rule it broke, see rejects.py), so ``rows_read == rows.height + rejects.height`` always holds.
Checks on the values themselves (negative prices, high < low, duplicate dates) belong to
validation, not here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from seqlab.ingest import lines as text
from seqlab.ingest import table
from seqlab.ingest.detect import DetectedLayout, detect_layout, sniff_separator
from seqlab.ingest.layouts import describe_expected, name_key, split_line
from seqlab.ingest.rejects import is_rejected, may_be_rejected, reject_detail, reject_rule
from seqlab.ingest.sources import RawSource, SourceError
from seqlab.ingest.table import VALUE_COLUMNS
from seqlab.ingest.values import is_null_token
from seqlab.schemas.canonical import PARSED_SCHEMA, REJECT_SCHEMA
from seqlab.schemas.symbols import SYMBOL_PATTERN, disagreeing_symbols


class UnknownLayoutError(SourceError):
    """No known layout fits the file's header."""


class SymbolMismatchError(SourceError):
    """The file labels its prices with another symbol than the one they would be stored under."""


@dataclass
class ParsedSource:
    """The outcome of parsing one source: canonical rows and rejected lines."""

    source: str
    sha256: str
    layout: str
    rows_read: int
    rows: pl.DataFrame  # PARSED_SCHEMA columns
    rejects: pl.DataFrame  # REJECT_SCHEMA columns


def parse_source(raw: RawSource, *, symbol: str = "ETH") -> ParsedSource:
    """Detect the layout of ``raw`` from its header and content and map it onto PARSED_SCHEMA.

    UTF-16 with a byte order mark is read as text. An empty file (nothing but whitespace), a
    first line over HEAD_BYTES or a header holding NUL bytes raises SourceError and an
    unrecognised header UnknownLayoutError; a file whose own symbol column (or ticker row)
    names another asset than ``symbol`` raises SymbolMismatchError; a file with a header but
    no data lines gives zero rows.
    """
    data = text.normalize_line_ends(text.decode_utf16(raw.data))
    head = text.read_head_lines(data)
    header = next((line for line in head if line.strip()), None)
    if header is None:
        raise SourceError(_describe_headless(raw.name, len(data)))
    if "\x00" in header:
        # Text never holds NUL; UTF-16 without a byte order mark does, and its header
        # would still match a layout once the NULs are ignored.
        raise SourceError(
            f"{raw.name}: the header line holds NUL bytes: not a text CSV (binary data, "
            "or UTF-16 without a byte order mark)"
        )
    detected = detect_layout(head, symbol)
    if detected is None:
        raise UnknownLayoutError(_describe_unknown(raw.name, head))
    _refuse_duplicate_headers(raw.name, head, detected)
    quoted = b'"' in data
    try:
        frame = table.build_table(data, detected, quoted)
        frame = table.add_values(frame, detected)
        frame = table.add_suspect_texts(frame, detected)
    except (ValueError, pl.exceptions.PolarsError) as error:
        raise SourceError(f"{raw.name}: cannot split into lines and fields ({error})") from error
    _check_file_symbols(raw.name, frame, detected, symbol)
    rows_read = frame.height
    # Rules are named on the rejected lines only; a mask is all the other lines need, and
    # the full checks run only where the cheap one says a rule could apply.
    rejected = frame.select(may_be_rejected(detected)).to_series()
    if rejected.any():
        suspects = rejected.arg_true()
        confirmed = frame[suspects].select(is_rejected(detected)).to_series()
        rejected = rejected.scatter(suspects, confirmed)
    rejects = (
        frame.filter(rejected)
        .with_columns(reject_rule(detected))
        .with_columns(reject_detail(detected, quoted))
        .select(pl.col("line"), pl.col("raw").fill_null(""), pl.col("rule"), pl.col("detail"))
    )
    rows = frame.select(
        pl.lit(symbol, dtype=pl.String).alias("symbol"),
        pl.col("date"),
        *[pl.col(f"value_{column}").alias(column) for column in VALUE_COLUMNS],
        pl.col("line"),
        pl.col("raw"),
        pl.col("time_of_day_s"),
    )
    del frame  # its text and helper columns can go before the filter below copies the rest
    if rejects.height:  # filtering copies every column, so only when something was refused
        rows = rows.filter(~rejected)
    return ParsedSource(
        source=raw.name,
        sha256=raw.sha256,
        layout=detected.layout.name,
        rows_read=rows_read,
        rows=_conform(rows, PARSED_SCHEMA),
        rejects=_conform(rejects, REJECT_SCHEMA),
    )


def _refuse_duplicate_headers(name: str, head: list[str], detected: DetectedLayout) -> None:
    """Refuse a header naming a column seqlab reads twice (``close,close``): which one holds
    the prices is a guess, and taking the first silently could store the wrong column."""
    if detected.layout.header_rows != 1 or not detected.skip_lines:
        return  # yfinance's three header rows: its tickers repeat by design
    header = split_line(head[detected.skip_lines - 1], detected.separator)
    keys = [name_key(cell) for cell in header]
    for column, index in sorted(detected.columns.items(), key=lambda item: item[1]):
        if index < len(keys) and keys.count(keys[index]) > 1:
            where = [i + 1 for i, key in enumerate(keys) if key == keys[index]]
            raise SourceError(
                f"{name}: the header names {header[index].strip()!r} {len(where)} times (columns "
                f"{', '.join(map(str, where))}); seqlab cannot tell which is the {column}: "
                "rename or remove the others")


def _check_file_symbols(
    name: str, frame: pl.DataFrame, detected: DetectedLayout, symbol: str
) -> None:
    """Refuse the whole file when its own symbol (a column, or yfinance's Ticker row) is not
    ``symbol``: the synthetic sample says ETH-SYNTHETIC on every row, and stored as ETH it
    would overwrite real prices. Nothing is stored before this check.
    """
    found = set(detected.header_symbols)
    if "symbol" in detected.columns:
        cell = pl.col("text_symbol").str.strip_chars()
        labels = frame.select(cell.filter(pl.col("fields_ok") & ~is_null_token(cell)).unique())
        found.update(labels.to_series().to_list())
    wrong = disagreeing_symbols(found, symbol)
    if not wrong:
        return
    shown = ", ".join(repr(s) for s in wrong[:5])
    if len(wrong) > 5:
        shown += f" (+{len(wrong) - 5} more)"
    hint = ""
    if len(wrong) == 1 and re.fullmatch(SYMBOL_PATTERN, wrong[0]):
        hint = f"; to store it as what it says, use --symbol {wrong[0]}"
    raise SymbolMismatchError(
        f"{name}: the file's own symbol is {shown}, not the requested symbol {symbol!r}; "
        f"nothing was stored{hint}"
    )


def _conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Cast only the columns whose dtype differs: a blanket cast copies every column."""
    differing = {name: dtype for name, dtype in schema.items() if frame.schema[name] != dtype}
    return frame.cast(differing) if differing else frame  # type: ignore[arg-type]


def _describe_headless(name: str, size: int) -> str:
    if size > text.HEAD_BYTES:  # detection reads only the head; its last piece may be cut
        return (
            f"{name}: no header line in the first {text.HEAD_BYTES // 1024} KiB "
            "(only blank lines, or a line longer than that)"
        )
    return f"{name}: file is empty (no header line)"


def _describe_unknown(name: str, head: list[str]) -> str:
    header = next((line for line in head if line.strip()), "")
    found = [cell.strip() for cell in split_line(header, sniff_separator(header))]
    return (
        f"{name}: unknown layout; header columns found: {found}\n"
        f"known layouts expect:\n{describe_expected()}"
    )
