"""Hostile CSVs through the whole ingest: never a traceback, every line accounted for.

Hypothesis writes price files the way the wild gets them wrong (shuffled columns, junk
cells, other encodings, CRLF or CR line ends, a truncated last line, too few or too many
fields, huge, zero and negative values, duplicate dates, quoted commas and newlines,
megabyte lines, binary garbage) and pushes their bytes through ``ingest_raw``, dataset gate
included. A file is either stored with ``rows_read == rows_valid + rows_quarantined``, which
the warehouse's prices, quarantine and ingestions rows repeat, or refused with a SourceError
whose message starts with the file's name and says what is wrong.

For the structured files the test also knows, line by line, which rows must be stored (and
with which values) and which must be quarantined. That expectation comes from the
generator's own choices, never from the parser.
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from seqlab.cli import app
from seqlab.ingest.sources import RawSource, SourceError
from seqlab.runners.ingest import IngestOptions, IngestSummary, ingest_raw
from seqlab.schemas.row_rules import ValueLimits
from seqlab.warehouse import connect

TODAY = date(2026, 11, 26)
FIRST_DAY = date(2015, 1, 1)
MEGABYTE = 1 << 20

# deadline=None: one example is a whole ingest (parse, pandera, DuckDB and the Great
# Expectations gate, which ingest always runs and which takes most of the ~0.5 s), so its
# time swings with the machine's load. The example counts keep the file under a minute.
settings.register_profile(
    "hostile_ingest",
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HOSTILE = settings.get_profile("hostile_ingest")

NUMBER_COLUMNS = ("open", "high", "low", "close", "volume", "market_cap")
AMOUNT_COLUMNS = ("volume", "market_cap")
PRICE_COLUMNS = ("open", "high", "low", "close")
COMMENT = "comment"  # a column no layout maps: its text never matters, only its quoting
# Spellings the generic layout maps; none of them makes a file look like a specific layout.
HEADER_NAMES = {
    "date": ("date", "Date", "DATE", "timestamp", "Day"),
    "open": ("open", "Open", "Open Price"),
    "high": ("high", "High", "HIGH"),
    "low": ("low", "Low", "low_usd"),
    "close": ("close", "Close", "price", "Close Price", "last"),
    "volume": ("volume", "Volume", "Vol", "total_volume"),
    "market_cap": ("market_cap", "Market Cap", "mktcap"),
    COMMENT: ("comment", "Notes"),
}
# How people write "no value": in a column the file has, the row is quarantined.
NULL_SPELLINGS = ("", "NaN", "nan", "-", "null", "N/A", "None")
# At or above these a value is quarantined (price_above_limit, amount_above_limit).
LIMITS = ValueLimits()
UPPER_LIMITS = {
    **{c: LIMITS.max_price for c in ("open", "high", "low", "close")},
    **{c: LIMITS.max_amount for c in ("volume", "market_cap")},
}
# Never a number: text, other scripts' digits, Excel's dot grouping, infinities.
JUNK_NUMBERS = (
    "abc", "١٢٣", "１２", "€5", "5€", "🚀", "½", "1.2.3", "24.058.575", "0x1F", "1_000",
    "inf", "-inf", "Infinity", "1e", "e5", "--1", "+-1", "12abc", "1e400", "-1e400",
    "1" + "0" * 400,
)  # fmt: skip
# Never a date. None looks like an epoch or a day-month date: the generic layout sniffs the
# date format from the first data row, so such junk there would switch the whole file to
# that format (a known limitation, not what this test is about).
JUNK_DATES = (
    "", "NaN", "-", "yesterday", "2024-13-45", "2024-02-30", "0000-01-01", "20240101",
    "2024-01-01T25:00:00", "١٢٣٤-٠١-٠١", "2024-00-10",
)  # fmt: skip
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16-le-bom", "utf-16-be-bom", "latin-1", "cp1252")
BOM_BYTES = {"utf-8-sig": 3, "utf-16-le-bom": 2, "utf-16-be-bom": 2}
LINE_ENDS = ("\n", "\r\n", "\r", "mixed")

CLEAN, BAD, UNKNOWN = "clean", "bad", "unknown"


# --- what a generated file is --------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One record as written: its cells in file column order and what ingest must do.

    ``verdict``: CLEAN rows are stored unless an earlier row holds their date, BAD rows are
    quarantined, UNKNOWN rows (padded or truncated) may go either way. ``values`` are the
    numbers a CLEAN row stores (None for an empty cell or a column the file lacks).
    """

    cells: tuple[str, ...]
    verdict: str
    day: date | None = None
    values: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class FileSpec:
    header: tuple[str, ...]  # header cells as written
    columns: tuple[str, ...]  # the canonical column (or COMMENT) each header cell holds
    records: tuple[Record, ...]
    line_end: str = "\n"
    encoding: str = "utf-8"
    final_line_end: bool = True
    truncate_bytes: int = 0  # bytes cut off the end of the file (the last line only)
    leading_blank_lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExpectedLine:
    number: int  # 1-based physical line number
    text: str  # as written, line end excluded
    verdict: str
    day: date | None
    values: dict[str, float | None]


def encode(text: str, encoding: str) -> bytes:
    if encoding == "utf-16-le-bom":
        return b"\xff\xfe" + text.encode("utf-16-le")
    if encoding == "utf-16-be-bom":
        return b"\xfe\xff" + text.encode("utf-16-be")
    # Characters Latin-1 / cp1252 cannot hold become "?", which is junk all the same.
    return text.encode(encoding, errors="replace")


def encoded_width(text: str, encoding: str) -> int:
    """Bytes ``text`` takes inside a file of ``encoding`` (no byte order mark)."""
    return len(encode(text, encoding)) - BOM_BYTES.get(encoding, 0)


def _line_end_of(spec: FileSpec, index: int) -> str:
    if spec.line_end != "mixed":
        return spec.line_end
    return "\r\n" if index % 2 else "\n"


def render(spec: FileSpec) -> tuple[bytes, list[ExpectedLine]]:
    """The file's bytes and, for every physical data line, what ingest must do with it."""
    inner_end = "\n" if spec.line_end == "mixed" else spec.line_end
    text = "".join(blank + _line_end_of(spec, 0) for blank in spec.leading_blank_lines)
    text += ",".join(spec.header)
    number = len(spec.leading_blank_lines) + 1
    expected: list[ExpectedLine] = []
    for index, record in enumerate(spec.records):
        text += _line_end_of(spec, index)
        written = ",".join(record.cells).replace("\n", inner_end)
        text += written
        for part in written.split(inner_end):  # a quoted line end starts a physical line
            number += 1
            expected.append(ExpectedLine(number, part, record.verdict, record.day, record.values))
    if spec.records and spec.final_line_end:
        text += _line_end_of(spec, len(spec.records))
    data = encode(text, spec.encoding)
    if spec.truncate_bytes:
        data = data[: -spec.truncate_bytes]
        expected[-1] = replace(expected[-1], verdict=UNKNOWN)
    return data, expected


def winners(lines: list[ExpectedLine]) -> dict[date, ExpectedLine]:
    """Per date, the earliest line that may be stored (every date here is date-only, so a
    tie goes to the earliest line)."""
    first: dict[date, ExpectedLine] = {}
    for line in lines:
        if line.verdict != BAD and line.day is not None:
            first.setdefault(line.day, line)
    return first


# --- strategies ------------------------------------------------------------------------------


def _text_without(forbidden: str) -> st.SearchStrategy[str]:
    return st.text(
        st.characters(blacklist_categories=("Nd", "Cc", "Cs"), blacklist_characters=forbidden),
        min_size=1,
        max_size=8,
    ).filter(lambda s: s == s.strip() and s not in NULL_SPELLINGS)


junk_numbers = st.one_of(st.sampled_from(JUNK_NUMBERS), _text_without(',"'))
junk_dates = st.one_of(st.sampled_from(JUNK_DATES), _text_without(',"'))
comments = _text_without(',"')


@st.composite
def price_texts(draw) -> dict[str, str]:
    """Consistent prices (low <= open, close <= high), from cents to 1.8e308 and 30 digits."""
    scale = draw(st.sampled_from(["plain", "plain", "huge", "digits30"]))
    if scale == "digits30":
        high = draw(st.integers(10**29, 10**30 - 1))
        low = high // 2
        prices = {"high": high, "low": low}
        prices |= {name: draw(st.integers(low, high)) for name in ("open", "close")}
        texts = {name: str(value) for name, value in prices.items()}
    else:
        high = draw(
            st.floats(1e-3, 1e7)
            if scale == "plain"
            else st.sampled_from([1e308, sys.float_info.max])
        )
        low = high / 2
        texts = {"high": repr(high), "low": repr(low)}
        for name in ("open", "close"):
            share = draw(st.floats(0, 1))
            texts[name] = repr(min(max(low + share * (high - low), low), high))
    for name in AMOUNT_COLUMNS:
        amount = draw(st.one_of(st.just(0.0), st.floats(0, 1e30), st.just(1e308)))
        texts[name] = repr(amount)
    return texts


MUTATIONS = (
    "none", "none", "none", "junk_number", "null_value", "junk_date", "future_date",
    "non_positive", "negative_amount", "too_few", "too_many", "quote_cell", "quoted_comma",
    "quoted_newline", "escaped_quotes", "padded",
)  # fmt: skip


@st.composite
def records(draw, columns: tuple[str, ...], day: date, long_line: bool) -> Record:
    """A record for ``day`` (clean unless a value is over its limit), then one hostile
    change and its verdict."""
    texts = draw(price_texts()) | {"date": day.isoformat(), COMMENT: draw(comments)}
    present = [c for c in columns if c in NUMBER_COLUMNS]
    values: dict[str, float | None] = {c: float(texts[c]) for c in present}
    over_limit = any(values[c] >= UPPER_LIMITS[c] for c in present)
    verdict = CLEAN
    mutation = draw(st.sampled_from(MUTATIONS))
    if long_line:
        mutation = "long_line"
    if mutation == "junk_number":
        texts[draw(st.sampled_from(present))] = draw(junk_numbers)
        verdict = BAD
    elif mutation == "null_value":
        # Only a column the layout lacks may be NULL (missing_value; null_row if all are).
        texts[draw(st.sampled_from(present))] = draw(st.sampled_from(NULL_SPELLINGS))
        verdict = BAD
    elif mutation == "junk_date":
        texts["date"] = draw(junk_dates)
        verdict = BAD
    elif mutation == "future_date":
        later = draw(
            st.one_of(st.integers(1, 3000).map(lambda n: TODAY + timedelta(n)), st.just(date.max))
        )
        texts["date"] = later.isoformat()
        verdict = BAD
    elif mutation == "non_positive":
        column = draw(st.sampled_from([c for c in present if c in PRICE_COLUMNS]))
        texts[column] = draw(st.sampled_from(["0", "0.0", "-0", "-" + texts[column]]))
        verdict = BAD
    elif mutation == "negative_amount" and any(c in AMOUNT_COLUMNS for c in present):
        column = draw(st.sampled_from([c for c in present if c in AMOUNT_COLUMNS]))
        texts[column] = draw(st.sampled_from(["-1", "-1e308", "-0.5"]))
        verdict = BAD
    elif mutation in ("quoted_comma", "quoted_newline", "escaped_quotes", "long_line"):
        verdict = _quote_hostile_text(draw, texts, columns, present, mutation)
    elif mutation == "quote_cell":
        column = draw(st.sampled_from(columns))
        texts[column] = f'"{texts[column]}"'
    elif mutation == "padded":
        column = draw(st.sampled_from(columns))
        texts[column] = f" {texts[column]} "
        # Padding is stripped file-wide only when it shows in the first 50 data lines.
        verdict = UNKNOWN
    cells = [texts[c] for c in columns]
    if mutation == "too_few":
        cells = cells[: draw(st.integers(1, len(cells) - 1))]
        verdict = BAD
    elif mutation == "too_many":
        cells += draw(st.lists(st.sampled_from(["1", "", "x"]), min_size=1, max_size=3))
        verdict = BAD
    if over_limit:  # 1e308 and 30-digit prices are read, then refused by their limit
        verdict = BAD
    day_stored = day if verdict != BAD else None
    values = {c: values.get(c) for c in NUMBER_COLUMNS}
    return Record(tuple(cells), verdict, day_stored, values if verdict == CLEAN else {})


def _quote_hostile_text(draw, texts, columns, present, mutation) -> str:
    """Put a comma, a line end, doubled quotes or a megabyte into a quoted field.

    In the comment column that is harmless, except a line end (which splits the record in
    two physical lines, each with an open quote); in a number column it is junk.
    """
    column = COMMENT if COMMENT in columns else draw(st.sampled_from(present))
    content = {
        "quoted_comma": "a, b",
        "quoted_newline": "a\nb",
        "escaped_quotes": 'say ""hi""',
        "long_line": "x" * MEGABYTE,
    }[mutation]
    if column != COMMENT:
        content = content.replace("a", "1").replace("b", "5").replace("x", "9")
    texts[column] = f'"{content}"'
    if mutation == "quoted_newline":
        return BAD
    return CLEAN if column == COMMENT else BAD


@st.composite
def hostile_files(draw) -> FileSpec:
    extra = draw(
        st.lists(
            st.sampled_from(["open", "high", "low", "volume", "market_cap", COMMENT]), unique=True
        )
    )
    columns = tuple(draw(st.permutations(["date", "close", *extra])))
    header = tuple(draw(st.sampled_from(HEADER_NAMES[c])) for c in columns)
    count = draw(st.integers(1, 12))  # header-only files: see the edge-case tests
    span = draw(st.integers(0, 3 * count))  # a narrow span of days makes duplicate dates
    long_line_at = draw(st.integers(0, 8 * max(count, 1)))  # about one file in eight
    rows = tuple(
        draw(
            records(
                columns,
                FIRST_DAY + timedelta(draw(st.integers(0, span))),
                long_line=index == long_line_at,
            )
        )
        for index in range(count)
    )
    spec = FileSpec(
        header=header,
        columns=columns,
        records=rows,
        line_end=draw(st.sampled_from(LINE_ENDS)),
        encoding=draw(st.sampled_from(ENCODINGS)),
        final_line_end=draw(st.booleans()),
        leading_blank_lines=tuple(draw(st.lists(st.sampled_from(["", "  "]), max_size=2))),
    )
    width = encoded_width(render(spec)[1][-1].text, spec.encoding) if rows else 0
    if width > 1 and draw(st.booleans()):  # cut inside the last line, never all of it
        cut = draw(st.integers(1, width - 1))
        spec = replace(spec, final_line_end=False, truncate_bytes=cut)
    return spec


# --- running one file and checking the warehouse ---------------------------------------------

_symbols = itertools.count()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    """One warehouse for the module; every example ingests under a symbol of its own."""
    return tmp_path_factory.mktemp("hostile") / "warehouse.duckdb"


def ingest_bytes(data: bytes, warehouse: Path) -> tuple[str, str, IngestSummary | SourceError]:
    """Ingest ``data`` as a file of its own; any exception but SourceError escapes."""
    number = next(_symbols)
    name, symbol = f"hostile dir/prices-{number}.csv", f"HOSTILE-{number}"
    options = IngestOptions(symbol=symbol, warehouse=warehouse, today=TODAY)
    try:
        return name, symbol, ingest_raw(RawSource.from_bytes(name, data), options)
    except SourceError as error:
        return name, symbol, error


def assert_refused_clearly(error: SourceError, name: str, symbol: str, warehouse: Path) -> None:
    message = str(error)
    assert message.startswith(f"{name}: "), message
    assert len(message[len(name) + 2 :].split()) >= 3, message  # says what is wrong
    if warehouse.exists():
        with connect(warehouse, read_only=True) as con:
            stored = con.execute(
                "SELECT (SELECT count(*) FROM ingestions WHERE symbol = $s)"
                " + (SELECT count(*) FROM prices WHERE symbol = $s)",
                {"s": symbol},
            ).fetchone()[0]
        assert stored == 0, "a refused file left rows behind"


@dataclass(frozen=True)
class Stored:
    """What the warehouse holds for one ingestion."""

    prices: dict[date, dict[str, float | None]]
    quarantine: dict[int, tuple[str, str, str, str]]  # line -> raw, rule, detail, source
    ingestion: dict[str, object]


def read_stored(warehouse: Path, symbol: str, ingestion_id: str) -> Stored:
    with connect(warehouse, read_only=True) as con:
        prices = con.execute(
            f"SELECT date, {', '.join(NUMBER_COLUMNS)} FROM prices WHERE symbol = $s",
            {"s": symbol},
        ).fetchall()
        quarantine = con.execute(
            "SELECT line, raw, rule, detail, source FROM quarantine WHERE ingestion_id = $i",
            {"i": ingestion_id},
        ).fetchall()
        cursor = con.execute(
            "SELECT * FROM ingestions WHERE ingestion_id = $i", {"i": ingestion_id}
        )
        names = [column[0] for column in cursor.description]
        [ingestion] = cursor.fetchall()
    lines = [row[0] for row in quarantine]
    assert len(lines) == len(set(lines)), "a line was quarantined twice"
    return Stored(
        prices={row[0]: dict(zip(NUMBER_COLUMNS, row[1:], strict=True)) for row in prices},
        quarantine={row[0]: tuple(row[1:]) for row in quarantine},
        ingestion=dict(zip(names, ingestion, strict=True)),
    )


def assert_accounted(summary: IngestSummary, name: str, warehouse: Path) -> Stored:
    """The summary adds up and the warehouse holds exactly what it says."""
    assert summary.source == name
    assert summary.rows_read == summary.rows_valid + summary.rows_quarantined
    assert sum(summary.quarantine_rules.values()) == summary.rows_quarantined
    stored = read_stored(warehouse, summary.symbol, summary.ingestion_id)
    # A fresh symbol: every valid row is a new price row.
    assert summary.rows_inserted == summary.rows_valid == len(stored.prices)
    assert (summary.rows_updated, summary.rows_unchanged) == (0, 0)
    assert len(stored.quarantine) == summary.rows_quarantined
    counts = {k: stored.ingestion[k] for k in ("rows_read", "rows_valid", "rows_quarantined")}
    assert counts == {k: getattr(summary, k) for k in counts}
    for raw, rule, detail, source in stored.quarantine.values():
        assert rule in summary.quarantine_rules and detail and source == name
        assert raw is not None
    return stored


def physical_data_lines(data: bytes, header_lines: int) -> int:
    """Lines after the header, counted straight from the bytes (a final line end starts no
    line; a file of lone CRs is a classic-Mac file)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        data = data.decode("utf-16", errors="replace").encode()
    if b"\n" not in data:
        data = data.replace(b"\r", b"\n")
    pieces = data.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()
    return max(len(pieces) - header_lines, 0)


# --- the properties --------------------------------------------------------------------------


def _clean(cells: str, day: date, **values: float) -> Record:
    full = {c: values.get(c) for c in NUMBER_COLUMNS}
    return Record(tuple(cells.split(",")), CLEAN, day, full)


# Found by this test: a year-0 date parsed (polars has year 0, Python does not), was stored,
# and the dataset gate died with "OverflowError: date value out of range".
YEAR_ZERO = FileSpec(
    header=("date", "close"),
    columns=("date", "close"),
    records=(
        Record(("0000-01-01", "1.5"), BAD),
        _clean("2024-01-01,2.5", date(2024, 1, 1), close=2.5),
    ),
)
# Found by this test: UTF-16 was read byte by byte, so every row was quarantined and the
# little-endian file's last line end made an extra, phantom row.
UTF16 = replace(
    YEAR_ZERO,
    records=(
        _clean("2024-01-01,1.5", date(2024, 1, 1), close=1.5),
        _clean("2024-01-02,2.5", date(2024, 1, 2), close=2.5),
    ),
    encoding="utf-16-le-bom",
)


@HOSTILE
@given(spec=hostile_files())
@example(spec=YEAR_ZERO)
@example(spec=UTF16)
@example(spec=replace(UTF16, encoding="utf-16-be-bom", line_end="\r\n"))
def test_hostile_file_is_stored_line_by_line_as_expected(spec, warehouse):
    data, lines = render(spec)
    name, symbol, outcome = ingest_bytes(data, warehouse)
    assert isinstance(outcome, IngestSummary), f"refused a file with a good header: {outcome}"
    stored = assert_accounted(outcome, name, warehouse)
    header_lines = len(spec.leading_blank_lines) + 1
    assert outcome.rows_read == len(lines) == physical_data_lines(data, header_lines)

    quarantined = set(stored.quarantine)
    assert quarantined <= {line.number for line in lines}
    for line in lines:
        if line.verdict == BAD:
            assert line.number in quarantined, f"line {line.number} {line.text[:80]!r} was stored"
            if spec.encoding not in ("latin-1", "cp1252"):  # those are read lossily
                assert stored.quarantine[line.number][0] == line.text
    first = winners(lines)
    for day, line in first.items():
        if line.verdict == CLEAN:
            assert line.number not in quarantined, stored.quarantine[line.number]
            assert stored.prices[day] == line.values, f"line {line.number}"
    for line in lines:  # a later line of a stored date is a duplicate
        if (
            line.day is not None
            and first[line.day] is not line
            and first[line.day].verdict == CLEAN
        ):
            assert line.number in quarantined
    unknown = sum(line.verdict == UNKNOWN for line in lines)
    sure = sum(line.verdict == CLEAN for line in first.values())
    assert sure <= outcome.rows_valid <= sure + unknown


# --- files that may be refused -----------------------------------------------------------------

GOOD_HEADER = b"date,open,high,low,close,volume\n"
REFUSED = (
    (b"", "file is empty"),
    (b"\xef\xbb\xbf", "file is empty"),
    (b" \r\n\n\t\n", "file is empty"),
    (b"\x00\x01\x02\xff\xfe,date,close\n", "NUL bytes"),
    ("date,close\n2024-01-01,1.5\n".encode("utf-16-le"), "NUL bytes"),  # no byte order mark
    (
        b"date,close," + b"x" * MEGABYTE + b"\n2024-01-01,1,2\n",
        "no header line in the first 64 KiB",
    ),
    (b"x" * MEGABYTE, "no header line in the first 64 KiB"),
    ("open;high;€uro;Ω\n1;2;3;4\n".encode(), "unknown layout"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "unknown layout"),
)


@pytest.mark.parametrize(
    ("data", "problem"), REFUSED, ids=lambda v: repr(v[:16]) if isinstance(v, bytes) else v
)
def test_file_without_a_usable_header_is_refused_by_name(data, problem, warehouse):
    name, symbol, outcome = ingest_bytes(data, warehouse)
    assert isinstance(outcome, SourceError), outcome
    assert_refused_clearly(outcome, name, symbol, warehouse)
    assert problem in str(outcome)


@pytest.mark.parametrize(
    "data",
    [
        GOOD_HEADER,
        GOOD_HEADER.rstrip(),
        GOOD_HEADER.replace(b"\n", b"\r\n"),
        b"\xef\xbb\xbf" + GOOD_HEADER,
        GOOD_HEADER + b"\n",
        GOOD_HEADER + b"x" * MEGABYTE,
        GOOD_HEADER + b"2024-01-01,1,2,0.5,1.5," + b"9" * MEGABYTE + b"\n",
    ],
    ids=["header", "no-final-eol", "crlf", "bom", "one-blank-line", "1MB-line", "1MB-number"],
)
def test_header_only_and_megabyte_lines_are_accounted(data, warehouse):
    name, _, outcome = ingest_bytes(data, warehouse)
    assert isinstance(outcome, IngestSummary), outcome
    assert_accounted(outcome, name, warehouse)
    assert outcome.rows_read == physical_data_lines(data, 1)
    assert outcome.rows_valid == 0


garbage_bodies = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=200).map(str.encode),
    st.lists(
        st.sampled_from(
            [
                b"2024-01-01",
                b"1e400",
                b"-1",
                b"0",
                b'"',
                b",",
                b"\r",
                b"\n",
                b"\xff",
                b"\x00",
                b"NaN",
                b"9223372036854775807",
            ]
        ),
        max_size=40,
    ).map(b"".join),
)


@settings(HOSTILE, max_examples=20)
@given(body=garbage_bodies, header=st.sampled_from([GOOD_HEADER, b"date,close\n", b""]))
# Found by this test: a 19-digit epoch day (year ~292,000) made pandera's failure report
# convert it to a Python date, and polars panicked (pyo3 PanicException, no SourceError).
@example(body=b"1700000000,1\n9223372036854775807,2\n", header=b"date,close\n")
@example(body=b"0001-01-01 00:00:00+23:59,1\n", header=b"date,close\n")
def test_garbage_is_accounted_for_or_refused_by_name(body, header, warehouse):
    data = header + body
    name, symbol, outcome = ingest_bytes(data, warehouse)
    if isinstance(outcome, SourceError):
        assert_refused_clearly(outcome, name, symbol, warehouse)
        return
    assert_accounted(outcome, name, warehouse)
    if header:
        assert outcome.rows_read == physical_data_lines(data, 1)


# --- the command line ---------------------------------------------------------------------------

refused_files = st.one_of(
    st.sampled_from([data for data, _ in REFUSED if len(data) < MEGABYTE]),
    st.binary(max_size=200).map(lambda junk: b"\x00" + junk),  # NUL in the header line
    st.lists(st.sampled_from(["open", "high", "Ω", "qty", "€uro"]), min_size=1, max_size=6).map(
        lambda cells: (",".join(cells) + "\n1,2\n").encode()
    ),
    st.just(GOOD_HEADER),
)


@settings(HOSTILE, max_examples=5)
@given(data=refused_files)
def test_cli_refuses_a_bad_file_with_its_name_and_no_traceback(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    source = folder / "bad input.csv"
    source.write_bytes(data)
    result = CliRunner().invoke(
        app, ["ingest", str(source), "--warehouse", str(folder / "w.duckdb"), "--out", str(folder)]
    )
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    assert f"error: {source}: " in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_cli_stores_a_hostile_file_and_prints_counts_that_add_up(tmp_path):
    spec = FileSpec(
        header=("Volume", "close", "Notes", "DATE", "low", "high"),
        columns=("volume", "close", COMMENT, "date", "low", "high"),
        records=(
            Record(("100", "1.5", '"a, b"', "2024-01-01", "1", "2"), CLEAN),
            Record(("1e400", "1.5", "x", "2024-01-02", "1", "2"), BAD),
            Record(("5", "-3", "x", "2024-01-03", "1", "2"), BAD),
            Record(("5", "1.5", '"a\nb"', "2024-01-04", "1", "2"), BAD),
            Record(("5", "1.7", "x", "2024-01-01", "1", "2"), BAD),
            Record(("5", "1.5", "x", "2024-01-05"), BAD),
        ),
        line_end="\r\n",
        encoding="utf-8-sig",
        truncate_bytes=3,
        final_line_end=False,
    )
    data, _ = render(spec)
    source = tmp_path / "hostile.csv"
    source.write_bytes(data)
    result = CliRunner().invoke(
        app,
        [
            "ingest",
            str(source),
            "--json",
            "--warehouse",
            str(tmp_path / "w.duckdb"),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert (payload["rows_read"], payload["rows_valid"], payload["rows_quarantined"]) == (7, 1, 6)
    assert payload["quarantine_rules"] == {
        "duplicate_date": 1,
        "non_positive_price": 1,
        "unparseable_number": 1,
        "wrong_field_count": 3,
    }
