"""The whole data path through ``ingest_source``: real files and generated bad rows, end to end.

Every real file under ``shared/data/real`` (and ``extra/``) goes source -> parse -> row
validation -> DuckDB -> dataset gate; the counts and dates asserted are the ones SOURCES.md
documents, and the messy files are checked against independent readings of their raw text
(Python's csv module), not against the parser under test.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from seqlab.checks.dataset import DatasetCheckConfig
from seqlab.ingest.lines import _read_lines_lossy, read_lines
from seqlab.ingest.parse import UnknownLayoutError
from seqlab.runners.ingest import IngestOptions, IngestSummary, ingest_source
from seqlab.schemas.canonical import CANONICAL_SCHEMA, REJECT_SCHEMA
from seqlab.warehouse import (
    IngestRecord,
    connect,
    current_data_version,
    data_version,
    latest_gate,
    load_ingestions,
    load_price_history,
    load_prices,
    load_quarantine,
    load_validations,
    query,
    store_ingest,
)

TODAY = date(2026, 11, 26)
D = date


@dataclass(frozen=True)
class RealFile:
    """What SOURCES.md says about a file, and what must end up stored from it."""

    path: str  # relative to shared/data/real
    layout: str
    rows: int  # data rows (SOURCES.md)
    first: date  # first stored date
    last: date  # last stored date
    quarantined: dict[str, int]  # rule -> rows


REAL_FILES = (
    RealFile("eth_daily_coincodex_2015-08-08_2025-08-08.csv", "coincodex", 3654,
             D(2015, 8, 8), D(2025, 8, 8), {}),
    RealFile("eth_daily_coingecko_2015-08-07_2025-10-16.csv", "coingecko", 3723,
             D(2015, 8, 7), D(2025, 10, 16), {}),
    RealFile("eth_daily_yahoo_2017-11-09_2024-07-26.csv", "yahoo", 2452,
             D(2017, 11, 9), D(2024, 7, 26), {}),
    RealFile("eth_daily_kaggle_coin_Ethereum_2015-08-08_2021-07-06.csv", "kaggle_coin", 2160,
             D(2015, 8, 8), D(2021, 7, 6), {}),
    RealFile("eth_daily_coinmarketcap_2024-11-03_2025-12-06.csv", "coinmarketcap", 399,
             D(2024, 11, 3), D(2025, 12, 6), {}),
    # SOURCES.md: "The first trading day, 2016-05-09, has open=0.0 and low=0.0."
    RealFile("eth_daily_cryptodatadownload_gemini_2016-05-09_2022-11-11.csv",
             "cryptodatadownload", 2378, D(2016, 5, 10), D(2022, 11, 11),
             {"non_positive_price": 1}),
    RealFile("eth_daily_investing_2020-01-01_2025-02-05.csv", "investing", 1863,
             D(2020, 1, 1), D(2025, 2, 5), {}),
    RealFile("eth_daily_yfinance_multiheader_2020-01-01_2025-12-30.csv",
             "yfinance_multiheader", 2191, D(2020, 1, 1), D(2025, 12, 30), {}),
    # SOURCES.md: "4 rows are entirely null".
    RealFile("extra/eth_daily_yahoo_legacy_2015-08-07_2021-11-24.csv", "yahoo", 2302,
             D(2015, 8, 7), D(2021, 11, 24), {"null_row": 4}),
    # SOURCES.md: 3,600 rows, 3,245 distinct dates (355 twice); same open=0 first day as file 6.
    RealFile("extra/eth_daily_cryptodatadownload_gemini_nobanner_2016-05-09_2025-03-27.csv",
             "cryptodatadownload", 3600, D(2016, 5, 10), D(2025, 3, 27),
             {"duplicate_date": 355, "non_positive_price": 1}),
    RealFile("extra/eth_daily_yahoo_webcopy_2023-12-31_2024-12-19.csv", "yahoo_webcopy", 355,
             D(2023, 12, 31), D(2024, 12, 19), {}),
)  # fmt: skip
MANGLED = "extra/eth_daily_coinmarketcap_excel_mangled_2017-01-01_2025-07-02.csv"
MANGLED_ROWS = 3105
COINCODEX = REAL_FILES[0].path
GEMINI_NOBANNER = REAL_FILES[9].path


def symbol_of(path: str) -> str:
    """One symbol per real file, so all of them share one warehouse without mixing."""
    return "ETH" if path == COINCODEX else f"ETH-{Path(path).stem[10:40]}"


def file_lines(path: Path) -> list[str]:
    """Physical lines as text (BOM and line ends removed); index 0 is line 1."""
    return path.read_bytes().decode("utf-8-sig").replace("\r\n", "\n").split("\n")


def csv_records(path: Path, delimiter: str = ",") -> list[tuple[int, dict[str, str]]]:
    """(physical line, row) for a one-header-line file, read by Python's csv module."""
    text = path.read_bytes().decode("utf-8-sig").replace("\r\n", "\n")
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    return [(index + 2, row) for index, row in enumerate(reader)]


def options_for(warehouse: Path, symbol: str = "ETH", **kwargs) -> IngestOptions:
    return IngestOptions(symbol=symbol, warehouse=warehouse, today=TODAY, **kwargs)


def ingest_one(path: Path, options: IngestOptions) -> IngestSummary:
    [summary] = ingest_source(str(path), options)
    assert summary.rows_read == summary.rows_valid + summary.rows_quarantined
    return summary


# --- every real file ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_warehouse(tmp_path_factory, real_data_dir) -> Path:
    return tmp_path_factory.mktemp("real") / "warehouse.duckdb"


@pytest.fixture(scope="module")
def real_ingests(real_warehouse, real_data_dir) -> dict[str, IngestSummary]:
    """Every real file ingested once, each under its own symbol, into one warehouse."""
    summaries = {}
    for path in (*(f.path for f in REAL_FILES), MANGLED):
        options = options_for(real_warehouse, symbol_of(path))
        summaries[path] = ingest_one(real_data_dir / path, options)
    return summaries


def test_the_table_covers_every_real_file(real_data_dir):
    on_disk = {str(p.relative_to(real_data_dir)) for p in real_data_dir.glob("*.csv")}
    on_disk |= {str(p.relative_to(real_data_dir)) for p in real_data_dir.glob("extra/*.csv")}
    assert on_disk == {f.path for f in REAL_FILES} | {MANGLED}


@pytest.mark.parametrize("real", REAL_FILES, ids=lambda f: Path(f.path).stem[10:40])
def test_real_file_is_stored_with_the_documented_rows_and_dates(
    real, real_ingests, real_warehouse, real_data_dir
):
    summary = real_ingests[real.path]
    path = real_data_dir / real.path
    expected_valid = real.rows - sum(real.quarantined.values())
    assert (summary.layout, summary.rows_read) == (real.layout, real.rows)
    assert (summary.rows_valid, summary.rows_quarantined) == (
        expected_valid,
        sum(real.quarantined.values()),
    )
    assert summary.quarantine_rules == real.quarantined
    assert (summary.rows_inserted, summary.rows_updated) == (expected_valid, 0)
    assert summary.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert summary.source == str(path)

    stored = load_prices(real_warehouse, symbol_of(real.path))
    assert stored.height == expected_valid
    assert (stored["date"][0], stored["date"][-1]) == (real.first, real.last)
    assert stored["date"].is_unique().all()
    assert summary.data_version == current_data_version(real_warehouse, symbol_of(real.path))


@pytest.mark.parametrize("real", REAL_FILES, ids=lambda f: Path(f.path).stem[10:40])
def test_quarantined_rows_carry_file_line_raw_text_and_rule(
    real, real_ingests, real_warehouse, real_data_dir
):
    summary = real_ingests[real.path]
    path = real_data_dir / real.path
    rows = load_quarantine(real_warehouse, summary.ingestion_id)
    assert rows.height == summary.rows_quarantined
    assert dict(rows.group_by("rule").len().rows()) == real.quarantined
    lines = file_lines(path)
    for row in rows.iter_rows(named=True):
        assert (row["source"], row["sha256"], row["symbol"]) == (
            str(path), summary.sha256, symbol_of(real.path)
        )
        assert row["raw"] == lines[row["line"] - 1]
        assert row["detail"] and row["quarantined_at"] is not None


def test_coincodex_stores_3654_days_from_2015_08_08_to_2025_08_08_exactly(
    real_ingests, real_warehouse, coincodex_prices
):
    stored = load_prices(real_warehouse, "ETH")
    assert stored.height == 3654
    assert (stored["date"].min(), stored["date"].max()) == (D(2015, 8, 8), D(2025, 8, 8))
    assert_frame_equal(stored.drop("volume_base"), coincodex_prices)
    assert stored["volume_base"].null_count() == 3654  # CoinCodex has no base volume
    count = query(real_warehouse, "SELECT count(*) AS n FROM prices WHERE symbol = 'ETH'")
    assert count["n"][0] == 3654


def test_gemini_first_day_with_zero_open_is_quarantined_with_its_line(
    real_ingests, real_warehouse, real_data_dir
):
    path = REAL_FILES[5].path
    rows = load_quarantine(real_warehouse, real_ingests[path].ingestion_id)
    lines = file_lines(real_data_dir / path)
    [row] = rows.rows(named=True)
    assert row["rule"] == "non_positive_price"
    assert row["line"] == len(lines) - (lines[-1] == "")  # the file's last (oldest) row
    assert "2016-05-09 04:00:00" in row["raw"] and "open=0.0" in row["detail"]
    # The 24 zero-volume flat candles are odd but valid: stored with volume 0.
    stored = load_prices(real_warehouse, symbol_of(path))
    flat = stored.filter(
        (pl.col("volume") == 0)
        & (pl.col("open") == pl.col("close"))
        & (pl.col("high") == pl.col("low"))
    )
    assert flat.height == 24
    assert flat["date"].min() >= D(2018, 6, 21) and flat["date"].max() <= D(2019, 12, 19)


def test_yahoo_legacy_null_rows_are_quarantined_by_date(
    real_ingests, real_warehouse, real_data_dir
):
    path = REAL_FILES[8].path
    rows = load_quarantine(real_warehouse, real_ingests[path].ingestion_id)
    assert sorted(raw.split(",")[0] for raw in rows["raw"]) == [
        "2020-04-17", "2020-10-09", "2020-10-12", "2020-10-13",
    ]  # fmt: skip
    assert all("null" in raw for raw in rows["raw"])
    stored = load_prices(real_warehouse, symbol_of(path))
    assert D(2020, 4, 17) not in set(stored["date"]) and D(2020, 4, 16) in set(stored["date"])


def test_gemini_nobanner_duplicates_keep_the_candle_nearest_after_midnight(
    real_ingests, real_warehouse, real_data_dir
):
    """The documented rule: per date the candle whose time is nearest after 00:00 UTC wins,
    the other one is quarantined as duplicate_date naming the kept line."""
    path = real_data_dir / GEMINI_NOBANNER
    candles: dict[str, list[tuple[str, int, dict[str, str]]]] = defaultdict(list)
    for line, row in csv_records(path):
        day, clock = row["date"].split(" ")
        candles[day].append((clock, line, row))
    twice = {day: sorted(c) for day, c in candles.items() if len(c) == 2}
    assert len(candles) == 3245 and len(twice) == 355 and max(map(len, candles.values())) == 2
    clocks = defaultdict(int)
    for entries in candles.values():
        for clock, _, _ in entries:
            clocks[clock] += 1
    assert (clocks["13:00:00"], clocks["00:00:00"]) == (167, 1001)  # as SOURCES.md says

    stored = {
        row["date"].isoformat(): row
        for row in load_prices(real_warehouse, symbol_of(GEMINI_NOBANNER)).iter_rows(named=True)
    }
    quarantine = load_quarantine(real_warehouse, real_ingests[GEMINI_NOBANNER].ingestion_id)
    duplicates = {
        row["line"]: row["detail"]
        for row in quarantine.filter(pl.col("rule") == "duplicate_date").iter_rows(named=True)
    }
    assert len(duplicates) == 355
    for day, ((_, kept_line, kept), (_, lost_line, _)) in twice.items():
        assert f"line {kept_line}" in duplicates[lost_line]
        for column in ("open", "high", "low", "close"):
            assert stored[day][column] == float(kept[column]), (day, column)
        assert stored[day]["volume"] == float(kept["Volume USD"])
        assert stored[day]["volume_base"] == float(kept["Volume ETH"])
    # 13:00 candles (2022-01-15 .. 06-30) lose to 04:00 ones; 04:00 ones lose to 00:00 ones.
    winners = defaultdict(int)
    for entries in twice.values():
        winners[entries[0][0]] += 1
    assert winners == {"04:00:00": 167, "00:00:00": 188}


def test_excel_mangled_values_never_reach_prices(real_ingests, real_warehouse, real_data_dir):
    """An independent reading of the raw file: a number with two or more dots is Excel's
    dot digit grouping (``24.058.575.219.728``); no such value, and no value off by a lost
    decimal point (caught by the file's own ``close_price``), may be stored."""
    path = real_data_dir / MANGLED
    summary = real_ingests[MANGLED]
    assert summary.rows_read == MANGLED_ROWS
    numbers = ("open", "high", "low", "close", "volume", "marketCap")
    records = csv_records(path, delimiter=";")
    assert len(records) == MANGLED_ROWS
    mangled_lines = {
        line for line, row in records if any(row[c].count(".") > 1 for c in numbers)
    }
    ohlc_mangled = sum(
        any(row[c].count(".") > 1 for c in ("open", "high", "low", "close")) for _, row in records
    )
    assert 2900 <= ohlc_mangled <= 3105  # "about 2,980 rows" (SOURCES.md): the oracle is sane

    quarantined = set(load_quarantine(real_warehouse, summary.ingestion_id)["line"])
    assert mangled_lines <= quarantined
    by_date = {row["timeOpen"][:10]: row for _, row in records}
    stored = load_prices(real_warehouse, symbol_of(MANGLED))
    assert stored.height == summary.rows_valid == MANGLED_ROWS - len(quarantined)
    columns = dict(zip(numbers, ("open", "high", "low", "close", "volume", "market_cap"),
                       strict=True))  # fmt: skip
    for row in stored.iter_rows(named=True):
        raw = by_date[row["date"].isoformat()]
        for source_name, column in columns.items():
            assert raw[source_name].count(".") <= 1
            assert row[column] == float(raw[source_name])
        close_price = float(raw["close_price"].replace(",", ""))
        assert abs(row["close"] - close_price) <= 0.01 * close_price


def test_excel_mangled_file_fails_the_dataset_gate(real_ingests, real_warehouse):
    """What survives of the mangled file is too little to train on: the gate blocks it."""
    summary = real_ingests[MANGLED]
    assert summary.rows_valid < DatasetCheckConfig().min_rows
    assert (summary.gate_passed, summary.gate_failed) == (False, ["enough_rows"])
    gate = latest_gate(real_warehouse, symbol_of(MANGLED))
    assert (gate.passed, gate.failed, gate.data_version) == (
        False, ["enough_rows"], summary.data_version
    )  # fmt: skip
    runs = load_validations(real_warehouse, symbol_of(MANGLED))
    enough = runs.filter(pl.col("expectation") == "enough_rows").row(0, named=True)
    assert (enough["severity"], enough["success"]) == ("critical", False)
    assert f"{summary.rows_valid} rows" in enough["observed"]


def test_every_other_real_file_passes_the_gate(real_ingests, real_warehouse):
    for real in REAL_FILES:
        summary = real_ingests[real.path]
        assert summary.gate_passed, (real.path, summary.gate_failed)
        assert latest_gate(real_warehouse, symbol_of(real.path)).passed


# --- re-ingest, incremental ingest, corrections ---------------------------------------------


def coincodex_until(real_data_dir: Path, last_day: date, folder: Path) -> Path:
    """The CoinCodex file as it looked when its newest day was ``last_day``: the same bytes
    (BOM, newest first, no final newline) without the lines of later days."""
    data = (real_data_dir / COINCODEX).read_bytes()
    header, *rows = data.split(b"\n")
    kept = [row for row in rows if date.fromisoformat(row[:10].decode()) <= last_day]
    path = folder / f"eth_coincodex_until_{last_day}.csv"
    path.write_bytes(b"\n".join([header, *kept]))
    return path


def test_reingesting_the_same_file_inserts_and_updates_nothing(tmp_path, real_data_dir):
    warehouse = tmp_path / "w.duckdb"
    path = real_data_dir / COINCODEX
    first = ingest_one(path, options_for(warehouse))
    before = load_prices(warehouse, "ETH")
    again = ingest_one(path, options_for(warehouse))
    assert (first.rows_inserted, first.rows_updated) == (3654, 0)
    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged) == (0, 0, 3654)
    assert again.data_version == first.data_version
    assert again.ingestion_id != first.ingestion_id
    assert_frame_equal(load_prices(warehouse, "ETH"), before)
    assert load_price_history(warehouse, "ETH").is_empty()
    # The stored rows still name the ingestion that wrote them.
    owners = query(warehouse, "SELECT DISTINCT ingestion_id FROM prices")
    assert owners["ingestion_id"].to_list() == [first.ingestion_id]
    assert load_ingestions(warehouse)["ingestion_id"].to_list() == [
        first.ingestion_id, again.ingestion_id,
    ]  # fmt: skip


def test_a_newer_overlapping_file_inserts_only_the_new_days(tmp_path, real_data_dir):
    warehouse = tmp_path / "w.duckdb"
    older = coincodex_until(real_data_dir, D(2025, 7, 25), tmp_path)
    first = ingest_one(older, options_for(warehouse))
    assert first.rows_inserted == first.rows_read == 3654 - 14
    assert load_prices(warehouse, "ETH")["date"].max() == D(2025, 7, 25)

    newer = ingest_one(real_data_dir / COINCODEX, options_for(warehouse))
    assert (newer.rows_inserted, newer.rows_updated, newer.rows_unchanged) == (14, 0, 3640)
    assert newer.data_version != first.data_version
    stored = load_prices(warehouse, "ETH")
    assert stored.height == 3654 and stored["date"].max() == D(2025, 8, 8)
    new_days = query(
        warehouse,
        f"SELECT min(date) AS lo, max(date) AS hi, count(*) AS n FROM prices "
        f"WHERE ingestion_id = '{newer.ingestion_id}'",
    ).row(0)
    assert new_days == (D(2025, 7, 26), D(2025, 8, 8), 14)
    assert load_price_history(warehouse, "ETH").is_empty()


def test_a_corrected_value_updates_the_row_and_history_keeps_the_old_one(
    tmp_path, real_data_dir
):
    warehouse = tmp_path / "w.duckdb"
    original_path = real_data_dir / COINCODEX
    original = ingest_one(original_path, options_for(warehouse))
    old_row = load_prices(warehouse, "ETH", start=D(2020, 3, 12), end=D(2020, 3, 12)).row(
        0, named=True
    )
    corrected_close = round((old_row["low"] + old_row["high"]) / 2, 4)
    assert corrected_close != old_row["close"]
    lines = original_path.read_bytes().split(b"\n")
    [index] = [i for i, line in enumerate(lines) if line.startswith(b"2020-03-12,")]
    cells = lines[index].split(b",")
    cells[5] = repr(corrected_close).encode()  # Start,End,Open,High,Low,Close,...
    lines[index] = b",".join(cells)
    corrected_path = tmp_path / "coincodex_corrected.csv"
    corrected_path.write_bytes(b"\n".join(lines))

    corrected = ingest_one(corrected_path, options_for(warehouse))
    assert (corrected.rows_inserted, corrected.rows_updated, corrected.rows_unchanged) == (
        0, 1, 3653,
    )  # fmt: skip
    assert corrected.data_version not in (original.data_version, "empty")
    new_row = load_prices(warehouse, "ETH", start=D(2020, 3, 12), end=D(2020, 3, 12))
    assert new_row["close"].to_list() == [corrected_close]
    [history] = load_price_history(warehouse, "ETH").rows(named=True)
    assert history["date"] == D(2020, 3, 12)
    assert {c: history[c] for c in old_row if c != "symbol"} == {
        c: v for c, v in old_row.items() if c != "symbol"
    }
    assert (history["source"], history["ingestion_id"], history["replaced_by"]) == (
        str(original_path), original.ingestion_id, corrected.ingestion_id
    )  # fmt: skip

    # Going back to the original values is one more update; the version is content-addressed.
    restored = ingest_one(original_path, options_for(warehouse))
    assert (restored.rows_inserted, restored.rows_updated) == (0, 1)
    assert restored.data_version == original.data_version
    history = load_price_history(warehouse, "ETH")
    assert history["close"].to_list() == [old_row["close"], corrected_close]


# --- every quarantine rule, on generated rows -------------------------------------------------

GOOD_DAYS = 12
HEADER = "date,open,high,low,close,volume"


def good_line(day: date, shift: float = 0.0) -> str:
    base = 100.0 + (day.toordinal() % 17) + shift
    return f"{day},{base},{base + 10},{base - 10},{base + 5},{1000 + day.day}"


def bad_rows_file(folder: Path) -> tuple[Path, dict[int, str], list[str]]:
    """Good rows for 2024-01-01.. plus one bad line per rule; returns the file, the rule
    expected on each bad line and every physical line."""
    start = date(2024, 1, 1)
    lines = [HEADER] + [good_line(start + timedelta(days=i)) for i in range(GOOD_DAYS)]
    bad = [
        ("2024-02-01,-5.0,110,90,105,1000", "non_positive_price"),  # negative price
        ("2024-02-02,100,110,90,0,1000", "non_positive_price"),  # zero close
        ("2024-02-03,100,90,110,105,1000", "high_below_low"),
        ("2024-02-04,100,110,90,1O5.5,1000", "unparseable_number"),  # text in a number
        ("", "empty_line"),
        ("2099-01-01,100,110,90,105,1000", "future_date"),
        (good_line(date(2024, 1, 5), shift=1.0), "duplicate_date"),  # conflicting values
        (good_line(date(2024, 1, 6)), "duplicate_date"),  # identical values
        ("2024-02-05,100,110,90,105,-1", "negative_volume"),
        ("2024-02-06,100,110,101,105,1000", "low_above_open_close"),
        ("2024-02-07,100,104,90,105,1000", "high_below_open_close"),
        ("2024-13-45,100,110,90,105,1000", "unparseable_date"),
        ("2024-02-08,100,110,90", "wrong_field_count"),
        ("2024-02-09,null,null,null,null,null", "null_row"),
        ("2024-02-10,n/a,110,90,105,1000", "missing_value"),  # a column the file has
        ("2024-02-11,100,110,90,105,", "missing_value"),
        ("2024-02-12,100,1e308,90,105,1000", "price_above_limit"),
        ("2024-02-13,100,110,90,105,1e308", "amount_above_limit"),
    ]
    expected = {}
    for text, rule in bad:
        lines.append(text)
        expected[len(lines)] = rule  # 1-based physical line
    lines.append(good_line(start + timedelta(days=GOOD_DAYS)))
    path = folder / "generated_bad_rows.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, expected, lines


def test_every_quarantine_rule_lands_in_the_quarantine_table(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    path, expected, lines = bad_rows_file(tmp_path)
    summary = ingest_one(path, options_for(warehouse))
    assert summary.rows_read == len(lines) - 1
    assert summary.rows_quarantined == len(expected)
    assert summary.rows_valid == GOOD_DAYS + 1

    rows = load_quarantine(warehouse, summary.ingestion_id)
    assert dict(zip(rows["line"], rows["rule"], strict=True)) == expected
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    for row in rows.iter_rows(named=True):
        assert row["raw"] == lines[row["line"] - 1]
        assert (row["source"], row["sha256"]) == (str(path), sha256)
        assert row["detail"] and row["quarantined_at"] is not None
    details: dict[str, str] = {}
    for rule, detail in zip(rows["rule"], rows["detail"], strict=True):
        details[rule] = details.get(rule, "") + detail + "\n"
    assert "open=-5.0" in details["non_positive_price"]
    assert "close=0.0" in details["non_positive_price"]
    assert "1O5.5" in details["unparseable_number"]
    assert "2099-01-01" in details["future_date"]
    assert "open (open) is empty: 'n/a'" in details["missing_value"]
    assert "volume (volume) is empty: ''" in details["missing_value"]
    assert "high=1e+308 (limit 1e+09)" in details["price_above_limit"]
    assert "volume=1e+308 (limit 1e+15)" in details["amount_above_limit"]

    duplicates = rows.filter(pl.col("rule") == "duplicate_date")["detail"].to_list()
    assert "values conflict" in duplicates[0] and "line 6" in duplicates[0]
    assert "values identical" in duplicates[1] and "line 7" in duplicates[1]
    stored = load_prices(warehouse, "ETH")
    assert stored["date"].to_list() == [D(2024, 1, 1) + timedelta(days=i) for i in range(13)]
    # The first line of a duplicated date is the one kept.
    kept = stored.filter(pl.col("date") == D(2024, 1, 5)).row(0, named=True)
    assert f"{kept['date']},{kept['open']}," in lines[5]


def test_a_file_of_only_bad_rows_is_processed_and_stores_nothing(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    path = tmp_path / "all_bad.csv"
    path.write_text(f"{HEADER}\n2024-01-01,-1,1,1,1,1\n\n2024-01-03,a,b,c,d,e\n")
    summary = ingest_one(path, options_for(warehouse))
    assert (summary.rows_read, summary.rows_valid, summary.rows_quarantined) == (3, 0, 3)
    assert summary.data_version == "empty" and not summary.gate_passed
    assert load_quarantine(warehouse, summary.ingestion_id).height == 3
    assert load_prices(warehouse, "ETH").is_empty()


# --- the dataset gate -----------------------------------------------------------------------


def daily_file(folder: Path, name: str, days: list[date]) -> Path:
    path = folder / name
    path.write_text("\n".join([HEADER, *(good_line(day) for day in days)]) + "\n")
    return path


def test_gate_fails_on_too_few_rows_and_passes_once_enough_are_stored(tmp_path):
    """The stored series is judged as a whole: 30 clean days are too few (critical), 150
    are enough. Unique and increasing dates are critical too, but the warehouse's key and
    ordered reads make them impossible to break through an ingest."""
    warehouse, docs = tmp_path / "w.duckdb", tmp_path / "docs"
    recent = [TODAY - timedelta(days=n) for n in range(150, 0, -1)]
    short = ingest_one(
        daily_file(tmp_path, "short.csv", recent[-30:]), options_for(warehouse, docs_dir=docs)
    )
    assert (short.rows_valid, short.gate_passed, short.gate_failed) == (30, False, ["enough_rows"])
    gate = latest_gate(warehouse, "ETH")
    assert (gate.passed, gate.failed, gate.data_version) == (
        False, ["enough_rows"], short.data_version
    )  # fmt: skip
    assert short.docs_path and Path(short.docs_path).is_file()

    full = ingest_one(daily_file(tmp_path, "full.csv", recent), options_for(warehouse))
    assert (full.rows_inserted, full.rows_unchanged, full.gate_passed) == (120, 30, True)
    gate = latest_gate(warehouse, "ETH")
    assert (gate.passed, gate.failed, gate.data_version) == (True, [], full.data_version)
    runs = load_validations(warehouse, "ETH")
    enough = runs.filter(pl.col("expectation") == "enough_rows")
    assert enough.select("data_version", "severity", "success").rows() == [
        (short.data_version, "critical", False),
        (full.data_version, "critical", True),
    ]


def test_gate_thresholds_are_configurable_and_warnings_are_not_fatal(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    days = [TODAY - timedelta(days=n) for n in range(160, 0, -1)]
    holed = days[:50] + days[60:]  # a 10-day hole
    path = daily_file(tmp_path, "holed.csv", holed)
    summary = ingest_one(path, options_for(warehouse))
    assert summary.gate_passed
    gate = latest_gate(warehouse, "ETH")
    assert gate.passed and gate.warnings == ["no_long_gaps"]
    gaps = load_validations(warehouse, "ETH").filter(pl.col("expectation") == "no_long_gaps")
    assert gaps.select("severity", "success").rows() == [("warning", False)]

    strict = options_for(warehouse, checks=DatasetCheckConfig(min_rows=500, max_gap_days=30))
    again = ingest_one(path, strict)
    assert (again.gate_passed, again.gate_failed) == (False, ["enough_rows"])
    gate = latest_gate(warehouse, "ETH")
    assert not gate.passed and gate.warnings == []


# --- sources with several files, and the line reader under the hot path -----------------------


def test_a_folder_is_ingested_file_by_file_each_in_its_own_transaction(tmp_path, real_data_dir):
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "a_yahoo.csv").write_bytes((real_data_dir / REAL_FILES[2].path).read_bytes())
    (folder / "b_unknown.csv").write_text("when,what\n2024-01-01,1\n")
    (folder / "c_webcopy.csv").write_bytes((real_data_dir / REAL_FILES[10].path).read_bytes())
    warehouse = tmp_path / "w.duckdb"
    with pytest.raises(UnknownLayoutError, match="b_unknown.csv"):
        ingest_source(str(folder), options_for(warehouse))
    # The file before the bad one is stored whole; nothing after it was touched.
    assert load_ingestions(warehouse)["source"].to_list() == [str(folder / "a_yahoo.csv")]
    assert load_prices(warehouse, "ETH").height == REAL_FILES[2].rows

    (folder / "b_unknown.csv").unlink()
    yahoo, webcopy = ingest_source(str(folder), options_for(warehouse))
    assert (yahoo.layout, yahoo.rows_inserted, yahoo.rows_updated) == ("yahoo", 0, 0)
    # The web copy runs past the Yahoo file's last day (2024-07-26) to 2024-12-19.
    assert (webcopy.layout, webcopy.rows_inserted) == ("yahoo_webcopy", 146)
    assert load_prices(warehouse, "ETH")["date"].max() == D(2024, 12, 19)


_LINE_PIECES = st.sampled_from(
    [b"a", b"1", b",", b"\n", b"\r", b"\r\n", b" ", b'"', b"2024-01-01,", b"\xef\xbb\xbf",
     b"\xc3\xa9", b"\xe2\x82\xac", b"\x1f", b"\xff", b"123456789012\n", b"1234567890123\n"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(_LINE_PIECES, max_size=40), skip_lines=st.integers(0, 3))
def test_line_reader_matches_polars_csv_reader(pieces, skip_lines):
    """Lines are zero-copy views into the file's bytes; they must read exactly as polars'
    own reader reads them: blank lines NULL, CR LF, BOMs, a missing final line end, invalid
    UTF-8 (decoded leniently), lines short enough to sit inside a view."""
    data = b"".join(pieces)
    assert read_lines(data, skip_lines).to_list() == _read_lines_lossy(data, skip_lines).to_list()


def test_a_first_load_hashes_its_frame_to_the_version_read_back_from_the_table(tmp_path):
    """The store versions a symbol's first load from the incoming frame instead of reading
    it back; both must agree on every value the hash normalises (NULL, -0.0, NaN) and on
    rows that arrive in any order."""
    rows = pl.DataFrame(
        {
            "symbol": ["X"] * 4,
            "date": [D(2024, 1, 3), D(2024, 1, 1), D(2024, 1, 4), D(2024, 1, 2)],
            "open": [1.0, None, 3.0, 2.5],
            "high": [1.5, 2.0, 3.5, 3.0],
            "low": [0.5, 1.0, 2.5, 2.0],
            "close": [1.2, 1.9, 3.1, 2.9],
            "volume": [-0.0, 0.0, float("nan"), 10.0],
            "market_cap": [None, None, None, 1e9],
            "volume_base": [float("nan"), 1.0, None, 0.0],
        },
        schema=CANONICAL_SCHEMA,
    )
    warehouse = tmp_path / "w.duckdb"
    record = IngestRecord("X", "generated.csv", "0" * 64, "generated", 4, datetime.now(UTC))
    stored = store_ingest(warehouse, record, rows, pl.DataFrame(schema=REJECT_SCHEMA))
    with connect(warehouse) as con:
        assert stored.data_version == data_version(con, "X") != "empty"
    # The same rows again go through the read-back path and must not look changed.
    again = store_ingest(warehouse, record, rows.reverse(), pl.DataFrame(schema=REJECT_SCHEMA))
    assert (again.rows_unchanged, again.data_version) == (4, stored.data_version)
