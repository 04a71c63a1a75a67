"""Recognising which layout a file uses from its first lines, and where its fields are."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from seqlab.ingest.layouts import (
    GENERIC_REQUIRED,
    LAYOUTS,
    MONTH_NAME_DATE,
    YFINANCE_MULTIHEADER,
    HeaderSample,
    Layout,
    name_key,
    split_line,
)

_DAY_MONTH_DATE = re.compile(r"^[0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{4}$")
_EPOCH = re.compile(r"^[0-9]{9,16}$")
_SNIFF_ROWS = 50  # date values voting on a sniffed format: one odd first row must not decide
_BANNER = re.compile(r"^https?://\S+$")
_SEPARATORS = (",", ";", "\t", "|")
_PADDING_SAMPLE_LINES = 50


@dataclass(frozen=True)
class DetectedLayout:
    """A layout resolved against one file: where its data starts and which field is which."""

    layout: Layout
    separator: str
    skip_lines: int  # physical lines before the first data line (preamble, banner, header)
    field_count: int
    columns: dict[str, int]  # canonical column -> 0-based field index
    source_names: dict[str, str]  # canonical column -> header cell as written
    date_format: str
    padded: bool  # fields carry surrounding spaces (seen in the first data lines)
    header_symbols: tuple[str, ...] = ()  # symbols the header names (yfinance's Ticker row)


def is_yfinance_multiheader(lines: list[str], separator: str) -> bool:
    """pandas' MultiIndex header from ``yfinance.download().to_csv()``: Price / Ticker / Date."""
    rows = [split_line(line, separator) for line in lines[:3]]
    if len(rows) < 3 or not all(rows):
        return False
    return (
        name_key(rows[0][0]) == "price"
        and name_key(rows[1][0]) == "ticker"
        and name_key(rows[2][0]) == "date"
        and all(not cell.strip() for cell in rows[2][1:])
    )


def _ticker_row(lines: list[str], separator: str) -> tuple[str, ...]:
    """The distinct tickers of a yfinance MultiIndex header's second line (``ETH-USD``)."""
    cells = split_line(lines[1], separator)[1:]
    return tuple(sorted({cell.strip() for cell in cells if cell.strip()}))


def sniff_separator(header: str) -> str:
    """The separator that splits the header into the most fields."""
    return max(_SEPARATORS, key=lambda sep: len(split_line(header, sep)))


def base_asset(symbol: str) -> str:
    """The traded asset a symbol names: ``ETH`` for ``ETH``, ``ETH-USD``, ``ETH/USD``, ``ETH_1``.

    Base-volume headers name the asset (``Volume ETH``), whatever the symbol stored under.
    """
    return re.split(r"[-/_:. ]", symbol.strip(), maxsplit=1)[0]


def _resolve_fields(layout: Layout, keys: list[str], symbol: str) -> dict[str, int]:
    resolved: dict[str, int] = {}
    for column, names in layout.fields.items():
        for name in names:
            name = name_key(name.format(base=base_asset(symbol)))
            if name in keys:
                resolved[column] = keys.index(name)
                break
    return resolved


def _has_padded_fields(lines: list[str], separator: str, columns: dict[str, int]) -> bool:
    for line in lines[:_PADDING_SAMPLE_LINES]:
        cells = split_line(line, separator)
        if any(
            index < len(cells) and cells[index] != cells[index].strip()
            for index in columns.values()
        ):
            return True
    return False


def _sniff_date_format(value: str) -> str:
    value = value.strip()
    if _EPOCH.match(value):
        return "unix"
    if _DAY_MONTH_DATE.match(value):
        return "day_month"
    if MONTH_NAME_DATE.match(value):
        return "month_name"
    return "iso"


def _sniff_column_format(lines: list[str], separator: str, index: int) -> str:
    """The format most of the first data rows' dates have (ties: the earliest row's)."""
    votes: Counter[str] = Counter()
    for line in lines:
        if sum(votes.values()) >= _SNIFF_ROWS:
            break
        cells = split_line(line, separator) if line.strip() else []
        if len(cells) > index and cells[index].strip():
            votes[_sniff_date_format(cells[index])] += 1
    return votes.most_common(1)[0][0] if votes else "iso"


def detect_layout(head_lines: list[str], symbol: str) -> DetectedLayout | None:
    """Recognise the layout from the first lines of a file (BOM removed, line ends stripped).

    Leading blank lines and a URL banner line (CryptoDataDownload) are skipped.
    Returns None when no layout fits; the caller turns that into a clear error.
    """
    start = 0
    while start < len(head_lines) and not head_lines[start].strip():
        start += 1
    if start < len(head_lines) and _BANNER.match(head_lines[start].strip()):
        start += 1
    if start >= len(head_lines):
        return None
    separator = sniff_separator(head_lines[start])
    cells = split_line(head_lines[start], separator)
    candidates, header_symbols = LAYOUTS, ()
    if is_yfinance_multiheader(head_lines[start:], separator):
        candidates = (YFINANCE_MULTIHEADER,)
        header_symbols = _ticker_row(head_lines[start:], separator)
    for layout in candidates:
        data_start = start + layout.header_rows
        first_row = next(
            (split_line(line, separator) for line in head_lines[data_start:] if line.strip()), []
        )
        sample = HeaderSample(cells, first_row)
        keys = sample.keys
        if any(name_key(name) not in keys for name in layout.signature):
            continue
        if layout.accepts is not None and not layout.accepts(sample):
            continue
        columns = _resolve_fields(layout, keys, symbol)
        if layout.name == "generic" and not all(name in columns for name in GENERIC_REQUIRED):
            continue
        date_format = layout.date_format
        if date_format == "sniff":
            date_format = _sniff_column_format(head_lines[data_start:], separator, columns["date"])
        return DetectedLayout(
            layout=layout,
            separator=separator,
            skip_lines=data_start,
            field_count=len(cells),
            columns=columns,
            source_names={column: cells[index].strip() for column, index in columns.items()},
            date_format=date_format,
            padded=_has_padded_fields(head_lines[data_start:], separator, columns),
            header_symbols=header_symbols,
        )
    return None
