"""Known CSV layouts of daily price files: their headers and how they map onto canonical columns.

detect.py picks one for a file from its header (never its name), sometimes helped by the
first data row (Yahoo's own download vs a Yahoo web table pasted into a CSV).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field

MONTH_NAME_DATE = re.compile(r"^[A-Za-z]{3,9} [0-9]{1,2}, [0-9]{4}$")


def name_key(cell: str) -> str:
    """The comparable form of a header cell: ``"Market Cap"``, ``market_cap`` -> ``marketcap``.

    Yahoo web tables append tooltip text after a run of spaces (``Close      Close price
    adjusted...``); only the text before that run is the column's name.
    """
    name = re.split(r"\s{2,}", cell.strip().strip('"').strip())[0]
    return re.sub(r"[^a-z0-9%]", "", name.lower())


@dataclass(frozen=True)
class HeaderSample:
    """What detection looks at: the header cells and the first data row, split into fields."""

    cells: list[str]
    first_row: list[str]

    @property
    def keys(self) -> list[str]:
        return [name_key(cell) for cell in self.cells]


@dataclass(frozen=True)
class Layout:
    """How one kind of source file maps onto the canonical columns.

    ``fields`` maps a canonical column (and ``close_price``, a cross-check column, and
    ``symbol``, the file's own label of its asset) to the header names, in name_key form,
    that may hold it; the first one present wins.
    ``signature`` lists the header names (as sources spell them) that identify the layout.
    """

    name: str
    signature: tuple[str, ...]
    fields: dict[str, tuple[str, ...]]
    date_format: str = "iso"  # iso | unix | day_month | month_name | sniff
    number_format: str = "plain"  # plain | thousands (comma digit grouping)
    suffixed: tuple[str, ...] = ()  # columns with K/M/B multipliers
    header_rows: int = 1
    accepts: Callable[[HeaderSample], bool] | None = field(default=None, compare=False)
    note: str = ""  # what tells it apart beyond the header, for error messages


def _looks_like_web_table(sample: HeaderSample) -> bool:
    padded = any(cell != cell.strip() for cell in sample.cells)
    written_date = bool(sample.first_row) and bool(MONTH_NAME_DATE.match(sample.first_row[0]))
    return padded or written_date


_OHLC = {"open": ("open",), "high": ("high",), "low": ("low",), "close": ("close",)}

YFINANCE_MULTIHEADER = Layout(
    "yfinance_multiheader",
    (),  # recognised structurally, see detect.is_yfinance_multiheader
    {"date": ("price",), **_OHLC, "volume": ("volume",)},
    header_rows=3,
)

# Most specific first: the generic layout would accept several of the others.
LAYOUTS: tuple[Layout, ...] = (
    Layout(
        "coincodex",
        ("Start", "End", "Open", "High", "Low", "Close"),
        {"date": ("start",), **_OHLC, "volume": ("volume",), "market_cap": ("marketcap",)},
    ),
    Layout(
        "coingecko",
        ("snapped_at", "price", "market_cap", "total_volume"),
        {
            "date": ("snappedat",),
            "close": ("price",),
            "market_cap": ("marketcap",),
            "volume": ("totalvolume",),
        },
    ),
    Layout(
        "kaggle_coin",
        ("SNo", "Name", "Symbol", "Date", "High", "Low", "Open", "Close", "Volume", "Marketcap"),
        {
            "date": ("date",),
            **_OHLC,
            "volume": ("volume",),
            "market_cap": ("marketcap",),
            "symbol": ("symbol",),
        },
    ),
    Layout(
        "coinmarketcap",
        ("timeOpen", "timeClose", "timeHigh", "timeLow", "open", "high", "low", "close"),
        {
            "date": ("timeopen",),
            **_OHLC,
            "volume": ("volume",),
            "market_cap": ("marketcap",),
            "close_price": ("closeprice",),
        },
    ),
    Layout(
        "cryptodatadownload",
        ("unix", "date", "symbol", "open", "high", "low", "close"),
        {
            "date": ("unix",),
            **_OHLC,
            "volume": ("volumeusd",),
            "volume_base": ("volume{base}",),
            "symbol": ("symbol",),
        },
        date_format="unix",
    ),
    Layout(
        "investing",
        ("Date", "Price", "Open", "High", "Low", "Vol.", "Change %"),
        {
            "date": ("date",),
            "open": ("open",),
            "high": ("high",),
            "low": ("low",),
            "close": ("price",),
            "volume_base": ("vol",),
        },
        date_format="day_month",
        number_format="thousands",
        suffixed=("volume_base",),
    ),
    Layout(
        "yahoo_webcopy",
        ("Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"),
        {"date": ("date",), **_OHLC, "volume": ("volume",)},
        date_format="month_name",
        number_format="thousands",
        accepts=_looks_like_web_table,
        note="padded header cells or dates like 'Dec 19, 2024'",
    ),
    Layout(
        "yahoo",
        ("Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"),
        {"date": ("date",), **_OHLC, "volume": ("volume",)},
        accepts=lambda sample: not _looks_like_web_table(sample),
        note="ISO dates",
    ),
    Layout(
        "generic",
        (),
        {
            "date": ("date", "day", "datetime", "timestamp", "time", "timeopen", "opentime"),
            "open": ("open", "openprice", "openusd"),
            "high": ("high", "highprice", "highusd"),
            "low": ("low", "lowprice", "lowusd"),
            "close": ("close", "closeprice", "closeusd", "price", "last"),
            "volume": ("volume", "volumeusd", "vol", "totalvolume", "quotevolume"),
            "market_cap": ("marketcap", "mktcap", "marketcapitalization", "marketcapusd"),
            "volume_base": ("volumebase", "volume{base}", "basevolume"),
            "symbol": ("symbol", "ticker", "coin"),
        },
        date_format="sniff",
    ),
)
GENERIC_REQUIRED = ("date", "close")


def split_line(line: str, separator: str) -> list[str]:
    """Split one CSV line, honouring double quotes (plainly, if the quoting is broken)."""
    try:
        return next(csv.reader([line], delimiter=separator), [])
    except csv.Error:  # e.g. a stray carriage return inside the line
        return line.split(separator)


def describe_expected() -> str:
    """One line per known layout with the header it expects, for error messages."""
    lines = [
        f"  {layout.name}: {', '.join(layout.signature)}"
        + (f" ({layout.note})" if layout.note else "")
        for layout in LAYOUTS[:-1]
    ]
    lines.append(
        f"  {YFINANCE_MULTIHEADER.name}: three header lines "
        "'Price,Close,...' / 'Ticker,...' / 'Date,,,'"
    )
    generic = LAYOUTS[-1]
    lines.append(
        "  generic: a date column (one of "
        + "/".join(generic.fields["date"])
        + ") and a close column (one of "
        + "/".join(generic.fields["close"])
        + "), optionally open/high/low/volume/market_cap"
    )
    return "\n".join(lines)
