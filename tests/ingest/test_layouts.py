"""Layout detection and parsing: every real file, plus generated edge cases."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from pathlib import Path

import polars as pl
import pytest

from seqlab.ingest.parse import ParsedSource, UnknownLayoutError, parse_source
from seqlab.ingest.sources import RawSource, SourceError, read_sources
from seqlab.schemas.canonical import PARSED_SCHEMA, REJECT_SCHEMA

D = dt.date

# file, layout, rows_read, rows kept, first date, last date (file order), distinct dates.
# Counts and dates are the ones SOURCES.md documents for each file.
REAL_FILES = [
    (
        "eth_daily_coincodex_2015-08-08_2025-08-08.csv",
        "coincodex",
        3654,
        3654,
        D(2025, 8, 8),
        D(2015, 8, 8),
        3654,
    ),
    (
        "eth_daily_coingecko_2015-08-07_2025-10-16.csv",
        "coingecko",
        3723,
        3723,
        D(2015, 8, 7),
        D(2025, 10, 16),
        3723,
    ),
    (
        "eth_daily_yahoo_2017-11-09_2024-07-26.csv",
        "yahoo",
        2452,
        2452,
        D(2017, 11, 9),
        D(2024, 7, 26),
        2452,
    ),
    (
        "eth_daily_kaggle_coin_Ethereum_2015-08-08_2021-07-06.csv",
        "kaggle_coin",
        2160,
        2160,
        D(2015, 8, 8),
        D(2021, 7, 6),
        2160,
    ),
    (
        "eth_daily_coinmarketcap_2024-11-03_2025-12-06.csv",
        "coinmarketcap",
        399,
        399,
        D(2025, 12, 6),
        D(2024, 11, 3),
        399,
    ),
    (
        "eth_daily_cryptodatadownload_gemini_2016-05-09_2022-11-11.csv",
        "cryptodatadownload",
        2378,
        2378,
        D(2022, 11, 11),
        D(2016, 5, 9),
        2378,
    ),
    (
        "eth_daily_investing_2020-01-01_2025-02-05.csv",
        "investing",
        1863,
        1863,
        D(2025, 2, 5),
        D(2020, 1, 1),
        1863,
    ),
    (
        "eth_daily_yfinance_multiheader_2020-01-01_2025-12-30.csv",
        "yfinance_multiheader",
        2191,
        2191,
        D(2020, 1, 1),
        D(2025, 12, 30),
        2191,
    ),
    (
        "extra/eth_daily_yahoo_legacy_2015-08-07_2021-11-24.csv",
        "yahoo",
        2302,
        2298,
        D(2015, 8, 7),
        D(2021, 11, 24),
        2298,
    ),
    (
        "extra/eth_daily_cryptodatadownload_gemini_nobanner_2016-05-09_2025-03-27.csv",
        "cryptodatadownload",
        3600,
        3600,
        D(2025, 3, 27),
        D(2016, 5, 9),
        3245,
    ),
    (
        "extra/eth_daily_yahoo_webcopy_2023-12-31_2024-12-19.csv",
        "yahoo_webcopy",
        355,
        355,
        D(2024, 12, 19),
        D(2023, 12, 31),
        355,
    ),
]
MANGLED_CMC = "extra/eth_daily_coinmarketcap_excel_mangled_2017-01-01_2025-07-02.csv"


@pytest.fixture(scope="module")
def parsed(real_data_dir: Path) -> dict[str, ParsedSource]:
    names = [entry[0] for entry in REAL_FILES] + [MANGLED_CMC]
    return {name: parse_source(read_sources(str(real_data_dir / name))[0]) for name in names}


def _parse(text: str | bytes, name: str = "generated.csv", **kwargs) -> ParsedSource:
    data = text.encode() if isinstance(text, str) else text
    return parse_source(RawSource.from_bytes(name, data), **kwargs)


def _physical_lines(path: Path) -> list[str]:
    """The file's lines as an editor shows them (BOM and line ends removed)."""
    text = path.read_bytes().removeprefix(b"\xef\xbb\xbf").decode()
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[:-1] if lines[-1] == "" else lines


# --- real files -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "layout", "rows_read", "kept", "first", "last", "distinct"), REAL_FILES
)
def test_real_file_parses_to_documented_counts_and_dates(
    parsed, name, layout, rows_read, kept, first, last, distinct
):
    result = parsed[name]
    assert result.layout == layout
    assert result.rows_read == rows_read
    assert result.rows.height == kept
    assert result.rows["date"][0] == first
    assert result.rows["date"][-1] == last
    assert result.rows["date"].n_unique() == distinct
    assert (result.rows["symbol"] == "ETH").all()


@pytest.mark.parametrize("name", [entry[0] for entry in REAL_FILES] + [MANGLED_CMC])
def test_real_file_accounts_for_every_line_with_its_original_text(parsed, real_data_dir, name):
    result = parsed[name]
    assert dict(result.rows.schema) == PARSED_SCHEMA
    assert dict(result.rejects.schema) == REJECT_SCHEMA
    assert result.rows_read == result.rows.height + result.rejects.height
    lines = _physical_lines(real_data_dir / name)
    header_lines = len(lines) - result.rows_read  # header, banner or yfinance's three lines
    assert header_lines == (3 if "multiheader" in name else 2 if "gemini_2016" in name else 1)
    numbers = pl.concat([result.rows["line"], result.rejects["line"]]).sort()
    assert numbers.to_list() == list(range(header_lines + 1, len(lines) + 1))
    for line, raw in result.rows.select("line", "raw").iter_rows():
        assert lines[line - 1] == raw


def test_sha256_travels_with_the_parsed_source(parsed, real_data_dir):
    name = REAL_FILES[0][0]
    assert parsed[name].sha256 == read_sources(str(real_data_dir / name))[0].sha256
    assert parsed[name].source.endswith(name)


def test_coincodex_takes_start_as_the_date_and_usd_volume_and_market_cap(parsed):
    rows = parsed[REAL_FILES[0][0]].rows
    first = rows.row(0, named=True)
    assert first["open"] == 3897.0842 and first["close"] == 4011.1147
    assert first["volume"] == 67522200782.623695
    assert first["market_cap"] == 476919967879.36237
    assert rows["volume_base"].null_count() == rows.height
    assert rows["time_of_day_s"].null_count() == rows.height  # date-only source


def test_coingecko_price_is_close_and_ohlc_stay_null(parsed):
    rows = parsed[REAL_FILES[1][0]].rows
    assert rows.select(pl.col("open", "high", "low").null_count()).row(0) == (3723,) * 3
    assert rows["close"][0] == 2.83162 and rows["market_cap"][0] == 0.0
    assert rows["volume"][0] == 90622.0
    assert D(2015, 8, 9) not in rows["date"].to_list()
    odd = rows.filter(pl.col("time_of_day_s") != 0).select("date", "time_of_day_s").rows()
    assert odd == [(D(2018, 1, 30), 5 * 60 + 11), (D(2018, 2, 8), 5 * 60 + 23)]


def test_kaggle_maps_high_low_open_close_by_name_and_keeps_2359(parsed):
    rows = parsed[REAL_FILES[3][0]].rows
    first = rows.row(0, named=True)
    assert first["high"] == 2.7988100051879883 and first["low"] == 0.7147250175476074
    assert first["open"] == 2.793760061264038 and first["close"] == 0.7533249855041504
    assert first["volume"] == 674188.0 and first["market_cap"] == 45486894.2408
    assert rows["time_of_day_s"].unique().to_list() == [23 * 3600 + 59 * 60 + 59]


def test_coinmarketcap_uses_time_open(parsed):
    rows = parsed[REAL_FILES[4][0]].rows
    first = rows.row(0, named=True)
    assert (first["date"], first["time_of_day_s"]) == (D(2025, 12, 6), 0)
    assert first["open"] == 3024.4874412321 and first["close"] == 3040.2078546944
    assert first["volume"] == 10962819759.9 and first["market_cap"] == 366935683692.94


@pytest.mark.parametrize("index", [5, 9])
def test_cryptodatadownload_unix_ms_and_s_agree_with_the_date_column(parsed, index):
    rows = parsed[REAL_FILES[index][0]].rows
    fields = rows["raw"].str.split(",")
    stamp = fields.list.get(1).str.to_datetime("%Y-%m-%d %H:%M:%S")
    assert (rows["date"] == stamp.dt.date()).all()
    clock = stamp.dt.hour().cast(pl.Int32) * 3600 + stamp.dt.minute().cast(pl.Int32) * 60
    assert (rows["time_of_day_s"] == clock).all()
    unix_digits = fields.list.get(0).str.len_chars()
    assert set(unix_digits.unique().to_list()) == {10, 13}
    first = rows.row(0, named=True)
    assert first["volume"] == float(first["raw"].split(",")[8])  # Volume USD
    assert first["volume_base"] == float(first["raw"].split(",")[7])  # Volume ETH


def test_gemini_nobanner_keeps_duplicate_days_with_their_day_boundaries(parsed):
    rows = parsed[REAL_FILES[9][0]].rows
    counts = dict(rows.group_by("time_of_day_s").len().iter_rows())
    assert counts == {4 * 3600: 3600 - 167 - 1001, 13 * 3600: 167, 0: 1001}
    assert rows.filter(pl.col("date").is_duplicated())["date"].n_unique() == 355


def test_investing_reads_day_first_dates_thousands_and_base_volume(parsed):
    rows = parsed[REAL_FILES[6][0]].rows
    first = rows.row(0, named=True)
    assert first["date"] == D(2025, 2, 5)
    assert (first["close"], first["open"], first["high"]) == (2780.30, 2731.76, 2822.55)
    assert first["volume_base"] == pytest.approx(977.78e3)
    assert rows["volume_base"][1] == pytest.approx(1.33e6)
    assert rows["volume"].null_count() == rows.height  # base volume only, never invented
    steps = rows["date"].diff().drop_nulls().dt.total_days()
    assert (steps == -1).all()  # descending and gap-free under the DD-MM reading


def test_yfinance_multiheader_skips_three_header_lines(parsed):
    result = parsed[REAL_FILES[7][0]]
    first = result.rows.row(0, named=True)
    assert first["line"] == 4
    assert first["close"] == 130.802001953125 and first["open"] == 129.6306610107422
    assert first["volume"] == 7935230330


def test_yahoo_legacy_rejects_its_four_null_rows(parsed, real_data_dir):
    name = REAL_FILES[8][0]
    lines = _physical_lines(real_data_dir / name)
    expected = [
        n for n, line in enumerate(lines, 1) if line.endswith(",null,null,null,null,null,null")
    ]
    rejects = parsed[name].rejects
    assert rejects["rule"].to_list() == ["null_row"] * 4
    assert rejects["line"].to_list() == expected
    assert [raw[:10] for raw in rejects["raw"]] == [
        "2020-04-17",
        "2020-10-09",
        "2020-10-12",
        "2020-10-13",
    ]


def test_yahoo_webcopy_reads_written_dates_and_grouped_volume(parsed):
    first = parsed[REAL_FILES[10][0]].rows.row(0, named=True)
    assert first["date"] == D(2024, 12, 19)
    assert (first["open"], first["close"]) == (3619.58, 3417.93)
    assert first["volume"] == 58_879_190_250


def test_mangled_cmc_keeps_no_multi_dot_value_and_rejects_by_an_independent_oracle(
    parsed, real_data_dir
):
    result = parsed[MANGLED_CMC]
    assert result.layout == "coinmarketcap"
    assert result.rows_read == 3105

    def is_number(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return False
        return True

    expected: dict[int, str] = {}
    with (real_data_dir / MANGLED_CMC).open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter=";")
        for line, row in enumerate(reader, start=2):
            numbers = [row[c] for c in ("open", "high", "low", "close", "volume", "marketCap")]
            if not all(is_number(value) for value in numbers):
                expected[line] = "unparseable_number"
            elif abs(float(row["close"]) - float(row["close_price"].replace(",", ""))) > (
                0.01 * float(row["close_price"].replace(",", ""))
            ):
                expected[line] = "close_mismatch"
    assert dict(result.rejects.select("line", "rule").iter_rows()) == expected
    kept_fields = result.rows["raw"].str.split(";").list.slice(5, 8).explode()
    assert not kept_fields.str.contains(r"^\d+\.\d+\.").any()
    first = result.rejects.row(0, named=True)
    assert first["line"] == 2
    assert "open (open) is not a number: '24.058.575.219.728'" in first["detail"]


# --- detection --------------------------------------------------------------------------


def test_detection_ignores_the_file_name(real_data_dir):
    data = (real_data_dir / REAL_FILES[0][0]).read_bytes()
    result = parse_source(RawSource.from_bytes("eth-usd-max_coingecko_yahoo.csv", data))
    assert result.layout == "coincodex"


def test_generic_layout_maps_yfinance_flat_columns_by_name():
    result = _parse("Date,Close,High,Low,Open,Volume\n2024-01-01,4,5,1,2,100\n")
    assert result.layout == "generic"
    row = result.rows.row(0, named=True)
    assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == (2, 5, 1, 4, 100)


def test_generic_layout_reads_seqlabs_own_canonical_csv():
    frame = pl.DataFrame(
        {
            "symbol": ["ETH", "ETH"],
            "date": [D(2024, 1, 1), D(2024, 1, 2)],
            "open": [1.0, 2.0],
            "high": [2.0, 3.0],
            "low": [0.5, 1.5],
            "close": [1.5, 2.5],
            "volume": [10.0, 20.0],
            "market_cap": [100.0, 200.0],
            "volume_base": [5.0, 7.0],
        }
    )
    result = _parse(frame.write_csv(), symbol="ETH")
    assert result.layout == "generic"
    assert result.rows.select(frame.columns).equals(frame)
    # A column the file has must be filled on every line: an empty cell is not stored as NULL.
    gaps = frame.with_columns(
        volume=pl.Series([10.0, None]), volume_base=pl.Series([None, 7.0])
    )
    result = _parse(gaps.write_csv(), symbol="ETH")
    assert result.rows.is_empty()
    assert result.rejects.select("line", "rule", "detail").rows() == [
        (2, "missing_value", "volume_base (volume_base) is empty: ''"),
        (3, "missing_value", "volume (volume) is empty: ''"),
    ]


def test_unknown_layout_names_the_file_the_columns_found_and_the_layouts_expected():
    with pytest.raises(UnknownLayoutError) as caught:
        _parse("when,how_much\n2024-01-01,3\n", name="mystery.csv")
    message = str(caught.value)
    assert message.startswith("mystery.csv: unknown layout")
    assert "['when', 'how_much']" in message
    for expected in (
        "coincodex: Start, End",
        "coingecko: snapped_at, price",
        "investing:",
        "yahoo: Date, Open",
        "kaggle_coin:",
        "cryptodatadownload: unix",
        "coinmarketcap: timeOpen",
        "yfinance_multiheader:",
        "generic:",
    ):
        assert expected in message
    assert isinstance(caught.value, SourceError)


def test_empty_file_is_a_source_error_and_header_only_gives_zero_rows():
    for empty in ("", "\n\n", "\ufeff"):
        with pytest.raises(SourceError, match="empty.csv: file is empty"):
            _parse(empty, name="empty.csv")
    result = _parse("Date,Open,High,Low,Close,Adj Close,Volume\n")
    assert (result.layout, result.rows_read, result.rows.height, result.rejects.height) == (
        "yahoo",
        0,
        0,
        0,
    )
    assert dict(result.rows.schema) == PARSED_SCHEMA


def test_yahoo_header_with_written_dates_is_the_web_copy():
    header = "Date,Open,High,Low,Close,Adj Close,Volume\n"
    web = _parse(header + '"Jan 2, 2024","2,000.5","2,100","1,900","2,050","2,050","1,234,567"\n')
    assert web.layout == "yahoo_webcopy"
    assert web.rows.select("date", "open", "volume").row(0) == (D(2024, 1, 2), 2000.5, 1234567)
    plain = _parse(header + "2024-01-02,2000.5,2100,1900,2050,2050,1234567\n")
    assert plain.layout == "yahoo"


# --- generated edge cases -----------------------------------------------------------------


def test_bom_crlf_and_missing_final_newline():
    result = _parse(b"\xef\xbb\xbfdate,close\r\n2024-01-01,1.5\r\n2024-01-02,2.5")
    assert result.rows.select("date", "close", "line", "raw").rows() == [
        (D(2024, 1, 1), 1.5, 2, "2024-01-01,1.5"),
        (D(2024, 1, 2), 2.5, 3, "2024-01-02,2.5"),
    ]
    assert result.rejects.height == 0


def test_classic_mac_line_ends():
    result = _parse("date,close\r2024-01-01,1\r2024-01-02,2\r")
    assert result.rows.select("line", "close").rows() == [(2, 1.0), (3, 2.0)]


def test_blank_lines_before_the_header_count_in_line_numbers():
    result = _parse("\n\ndate,close\n2024-01-01,1\n")
    assert (result.rows_read, result.rows["line"].to_list()) == (1, [4])


@pytest.mark.parametrize("separator", [";", "\t", "|"])
def test_generic_layout_sniffs_the_separator(separator: str):
    header = separator.join(["Date", "Open", "Close"])
    result = _parse(f"{header}\n{separator.join(['2024-01-01', '1.5', '2.5'])}\n")
    assert result.rows.select("open", "close").row(0) == (1.5, 2.5)


def test_padded_fields_are_stripped():
    result = _parse("date, open, close\n2024-01-01,  1.5 , 2\n 2024-01-02 , 3, x \n")
    assert result.rows.select("date", "open", "close").rows() == [(D(2024, 1, 1), 1.5, 2.0)]
    assert result.rejects.select("line", "detail").rows() == [
        (3, "close (close) is not a number: 'x'")
    ]


def test_blank_lines_among_rows_are_rejected_but_the_final_newline_is_not_a_row():
    result = _parse("date,close\n2024-01-01,1\n\n2024-01-03,3\n")
    assert result.rows_read == 3
    assert result.rows["line"].to_list() == [2, 4]
    assert result.rejects.rows() == [(3, "", "empty_line", "blank line among data rows")]
    trailing = _parse("date,close\n2024-01-01,1\n\n")
    assert trailing.rejects.select("line", "rule").rows() == [(3, "empty_line")]


def test_descending_rows_keep_file_order():
    result = _parse("date,close\n2024-01-03,3\n2024-01-01,1\n2024-01-02,2\n")
    assert result.rows["date"].to_list() == [D(2024, 1, 3), D(2024, 1, 1), D(2024, 1, 2)]


def test_text_in_a_number_names_the_column_and_the_value():
    result = _parse("Date,Open,Close,Volume\n2024-01-01,1,abc,5\n2024-01-02,1,2,1.2.3\n")
    assert result.rows.height == 0
    assert result.rejects.select("line", "rule", "detail").rows() == [
        (2, "unparseable_number", "close (Close) is not a number: 'abc'"),
        (3, "unparseable_number", "volume (Volume) is not a number: '1.2.3'"),
    ]


def test_infinity_is_unreadable_while_empty_and_null_markers_are_missing_values():
    result = _parse(
        "date,open,close\n2024-01-01,inf,1\n2024-01-02,,2\n2024-01-03,5,NaN\n"
        "2024-01-04,n/a,4\n2024-01-05,5,6\n"
    )
    assert result.rejects.select("line", "rule", "detail").rows() == [
        (2, "unparseable_number", "open (open) is not a number: 'inf'"),
        (3, "missing_value", "open (open) is empty: ''"),
        (4, "missing_value", "close (close) is empty: 'NaN'"),
        (5, "missing_value", "open (open) is empty: 'n/a'"),
    ]
    assert result.rows.select("open", "close").rows() == [(5.0, 6.0)]
    # Only a column the layout lacks is NULL (here market_cap and the others).
    assert result.rows["market_cap"].to_list() == [None]


def test_a_row_of_nothing_but_nulls_is_a_null_row():
    result = _parse("date,open,close\n2024-01-01,null,null\n,,\n2024-01-03,1,2\n")
    assert result.rejects.select("line", "rule").rows() == [(2, "null_row"), (3, "null_row")]
    assert result.rows["line"].to_list() == [4]


def test_wrong_field_count_both_ways():
    result = _parse("date,open,close\n2024-01-01,1\n2024-01-02,1,2,3\n2024-01-03,1,2\n")
    assert result.rejects.select("line", "rule", "detail").rows() == [
        (2, "wrong_field_count", "expected 3 fields, found 2"),
        (3, "wrong_field_count", "expected 3 fields, found 4"),
    ]
    assert result.rows["line"].to_list() == [4]


def test_an_unclosed_quote_rejects_only_its_own_line():
    result = _parse('date,close\n2024-01-01,"1"\n2024-01-02,"2\n2024-01-03,3\n2024-01-04,"4"\n')
    assert result.rejects.select("line", "rule").rows() == [(3, "wrong_field_count")]
    assert "never closed" in result.rejects["detail"][0]
    assert result.rows.select("line", "close").rows() == [(2, 1.0), (4, 3.0), (5, 4.0)]


def test_quoted_separators_do_not_split_fields():
    result = _parse('Date,Open,Close\n"2024-01-01","1","2"\n"2024-01-02","1,5","2"\n')
    assert result.rows.height == 1
    assert result.rejects.select("line", "rule").rows() == [(3, "unparseable_number")]


def test_unparseable_dates_are_rejected():
    result = _parse(
        "date,close\n2024-02-30,1\n2024-01-01T25:00:00,1\nyesterday,1\n2024-01-04,1\n"
        "2024-01-01 23:59:60,1\n,1\n"
    )
    assert result.rejects["rule"].to_list() == ["unparseable_date"] * 5
    assert "'yesterday'" in result.rejects["detail"][2]
    assert result.rows["date"].to_list() == [D(2024, 1, 4)]


def test_impossible_utc_offsets_are_unparseable_not_shifted():
    result = _parse("date,close\n2024-01-01 23:59:59+99:99,1\n2024-01-02T10:00:00+24:00,1\n"
                    "2024-01-03T10:00:00+05:60,1\n2024-01-04T23:00:00-23:59,1\n")
    assert result.rejects["rule"].to_list() == ["unparseable_date"] * 3
    assert result.rows["date"].to_list() == [D(2024, 1, 5)]  # -23:59 is real: the next UTC day


def test_timestamps_give_the_utc_day_and_time_of_day():
    result = _parse(
        "timestamp,close\n"
        "2024-01-01 23:59:59,1\n"  # Kaggle style
        "2024-01-01T00:00:00.000Z,1\n"  # CoinMarketCap style
        "2024-01-01 00:05:11 UTC,1\n"  # CoinGecko style
        "2024-01-01T23:30:00-02:00,1\n"  # an offset moves it to the next UTC day
        "2024-01-01T00:30:00+0100,1\n"  # ... or to the previous one
        "2024-01-01 10:00,1\n"
    )
    assert result.rows.select("date", "time_of_day_s").rows() == [
        (D(2024, 1, 1), 86399),
        (D(2024, 1, 1), 0),
        (D(2024, 1, 1), 311),
        (D(2024, 1, 2), 5400),
        (D(2023, 12, 31), 84600),
        (D(2024, 1, 1), 36000),
    ]


def test_unix_seconds_milliseconds_and_microseconds():
    header = "unix,date,symbol,open,high,low,close,Volume ETH,Volume USD\n"
    result = _parse(
        header
        + "1668139200000,x,ETH/USD,1,2,1,2,3,4\n"
        + "1462766400,x,ETH/USD,1,2,1,2,3,4\n"
        + "1704067199000000,x,ETH/USD,1,2,1,2,3,4\n"
        + "-1,x,ETH/USD,1,2,1,2,3,4\n"
    )
    assert result.layout == "cryptodatadownload"
    assert result.rows.select("date", "time_of_day_s").rows() == [
        (D(2022, 11, 11), 4 * 3600),
        (D(2016, 5, 9), 4 * 3600),
        (D(2023, 12, 31), 86399),
    ]
    assert result.rejects.select("line", "rule").rows() == [(5, "unparseable_date")]


INVESTING_HEADER = '"Date","Price","Open","High","Low","Vol.","Change %"\n'


def _investing(dates: list[str]) -> ParsedSource:
    body = "".join(f'"{d}","1,000.50","1","1","1","1.5K","0.1%"\n' for d in dates)
    return _parse(INVESTING_HEADER + body)


def test_investing_date_order_is_decided_by_a_component_above_12():
    month_first = _investing(["01/13/2024", "01/02/2024"]).rows["date"].to_list()
    assert month_first == [D(2024, 1, 13), D(2024, 1, 2)]
    day_first = _investing(["13-01-2024", "02-01-2024"]).rows["date"].to_list()
    assert day_first == [D(2024, 1, 13), D(2024, 1, 2)]


def test_investing_date_order_is_decided_by_consecutive_days_when_ambiguous():
    day_first = _investing(["03-02-2024", "02-02-2024", "01-02-2024"]).rows["date"]
    assert day_first.to_list() == [D(2024, 2, 3), D(2024, 2, 2), D(2024, 2, 1)]
    month_first = _investing(["03-02-2024", "03-01-2024", "02-29-2024"]).rows["date"]
    assert month_first.to_list() == [D(2024, 3, 2), D(2024, 3, 1), D(2024, 2, 29)]


def test_investing_volume_suffixes_and_dash_for_missing_is_quarantined():
    result = _parse(
        INVESTING_HEADER
        + '"02-01-2024","2","1","1","1","1.5B","0%"\n'
        + '"01-01-2024","2","1","1","1","-","0%"\n'
        + '"31-12-2023","2","1","1","1","7X","0%"\n'
    )
    assert result.rows["volume_base"].to_list() == [1.5e9]
    assert result.rejects.select("line", "rule").rows() == [
        (3, "missing_value"),  # Investing's "-" for no volume: the column is there, so no NULL
        (4, "unparseable_number"),
    ]


def test_cmc_close_price_cross_check_catches_a_single_dot_mangle():
    header = "timeOpen;timeClose;timeHigh;timeLow;name;open;high;low;close;close_price;volume;marketCap;timestamp\r\n"
    stamp = "2024-01-01T00:00:00.000Z"
    body = (
        f"{stamp};{stamp};{stamp};{stamp};2781;2500.1;2600.2;2400.3;2570.4;2,570.23;1;2;{stamp}\r\n"
        f"{stamp};{stamp};{stamp};{stamp};2781;2500.1;2600.2;2400.3;25.704;2,570.23;1;2;{stamp}\r\n"
    )
    result = _parse(b"\xef\xbb\xbf" + (header + body).encode())
    assert result.layout == "coinmarketcap"
    assert result.rows["line"].to_list() == [2]
    assert result.rejects.select("line", "rule").rows() == [(3, "close_mismatch")]
    assert "differs from close_price by more than 1%" in result.rejects["detail"][0]


def test_banner_line_is_skipped_and_counted_in_line_numbers():
    result = _parse(
        "https://www.CryptoDataDownload.com\n"
        "unix,date,symbol,open,high,low,close,Volume ETH,Volume USD\n"
        "1462766400,2016-05-09 04:00:00,ETH/USD,0.0,12.0,0.0,9.36,1376.6,12885.1\n"
    )
    assert result.rows.select("line", "open", "volume", "volume_base").rows() == [
        (3, 0.0, 12885.1, 1376.6)
    ]


# --- speed --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_million_row_canonical_file_parses_quickly():
    rows = 1_000_000
    start = dt.datetime(2020, 1, 1)
    stamps = pl.datetime_range(
        start, start + dt.timedelta(minutes=rows - 1), "1m", eager=True
    ).dt.strftime("%Y-%m-%d %H:%M:%S")
    price = pl.int_range(rows, eager=True).cast(pl.Float64) / 1000 + 100
    frame = pl.DataFrame(
        {
            "date": stamps,
            "open": price,
            "high": price + 1,
            "low": price - 1,
            "close": price + 0.5,
            "volume": price * 1e6,
        }
    )
    buffer = io.BytesIO()
    frame.write_csv(buffer)
    raw = RawSource.from_bytes("million.csv", buffer.getvalue())
    began = time.process_time()
    result = parse_source(raw)
    cpu_s = time.process_time() - began
    assert (result.rows.height, result.rejects.height) == (rows, 0)
    assert result.rows["time_of_day_s"][-1] == (rows - 1) % 1440 * 60
    # Measured at 0.8-1.0 s of CPU on the 2-core dev machine. CPU time, not wall time, so other
    # jobs on a shared machine cannot make this flaky; a per-row Python loop would still take
    # tens of seconds.
    assert cpu_s < 4.0, f"1M rows took {cpu_s:.2f} s of CPU"


def test_one_odd_first_row_does_not_decide_the_date_format():
    """The format of a generic file's dates is voted by its first rows, not taken from row 1."""
    iso = _parse("date,close\n1700000000,1\n2024-01-01,1\n2024-01-02,1\n2024-01-03,1\n")
    assert iso.rows["date"].to_list() == [D(2024, 1, 1), D(2024, 1, 2), D(2024, 1, 3)]
    assert iso.rejects["rule"].to_list() == ["unparseable_date"]
    unix = _parse("date,close\n2024-01-01,1\n1704153600,1\n1704240000,1\n")
    assert unix.rows["date"].to_list() == [D(2024, 1, 2), D(2024, 1, 3)]
    assert unix.rejects["rule"].to_list() == ["unparseable_date"]
