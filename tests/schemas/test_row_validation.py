"""Row validation (pandera, polars backend): rules, quarantine accounting, duplicates, real files."""

from __future__ import annotations

import datetime as dt
import math
import time

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandera.errors import SchemaErrors

from seqlab.schemas.canonical import CANONICAL_COLUMNS, PARSED_SCHEMA, REJECT_SCHEMA
from seqlab.schemas.prices import CanonicalPrices, validate_rows
from seqlab.schemas.row_rules import ValueLimits

TODAY = dt.date(2026, 11, 26)
RULE_ORDER = (
    "non_positive_price",
    "negative_volume",
    "price_above_limit",
    "amount_above_limit",
    "high_below_low",
    "low_above_open_close",
    "high_below_open_close",
    "future_date",
)
GOOD = {
    "symbol": "ETH",
    "date": dt.date(2020, 1, 1),
    "open": 100.0,
    "high": 110.0,
    "low": 90.0,
    "close": 105.0,
    "volume": 1e6,
    "market_cap": 1e9,
    "volume_base": 1e4,
    "time_of_day_s": None,
}


def make_rows(*changes: dict) -> pl.DataFrame:
    """A PARSED_SCHEMA frame: one GOOD row per dict of changes, lines 2, 3, ..."""
    records = []
    for index, change in enumerate(changes):
        record = {**GOOD, **change}
        record.setdefault("line", index + 2)
        record.setdefault("raw", f"row {index}")
        records.append(record)
    return pl.DataFrame(records, schema=PARSED_SCHEMA)


def only_reject(result) -> dict:
    assert result.quarantined.height == 1, result.quarantined
    return result.quarantined.row(0, named=True)


def test_good_rows_pass_with_canonical_shape():
    rows = make_rows({}, {"date": dt.date(2020, 1, 2)})
    result = validate_rows(rows, today=TODAY)
    assert result.valid.columns == [*CANONICAL_COLUMNS, "line"]
    assert result.valid.get_column("line").to_list() == [2, 3]
    assert dict(result.quarantined.schema) == REJECT_SCHEMA
    assert result.quarantined.is_empty()
    CanonicalPrices.validate(result.valid.drop("line"))


@pytest.mark.parametrize(
    ("change", "rule", "detail"),
    [
        ({"open": 0.0}, "non_positive_price", "open=0.0"),
        ({"low": -5.0}, "non_positive_price", "low=-5.0"),
        ({"close": None}, "non_positive_price", "close=null"),
        ({"close": math.inf, "high": math.inf}, "non_positive_price", "close=inf"),
        ({"high": math.nan}, "non_positive_price", "high=NaN"),
        ({"volume": -1.0}, "negative_volume", "volume=-1.0"),
        ({"market_cap": -3.0}, "negative_volume", "market_cap=-3.0"),
        ({"volume_base": math.nan}, "negative_volume", "volume_base=NaN"),
        ({"high": 1e308}, "price_above_limit", "high=1e+308 (limit 1e+09)"),
        ({"high": 2e9, "close": 1e9}, "price_above_limit", "high=2000000000.0, close=1000000000.0"),
        ({"market_cap": 1e308}, "amount_above_limit", "market_cap=1e+308 (limit 1e+15)"),
        ({"volume": 1e15}, "amount_above_limit", "volume=1000000000000000.0 (limit 1e+15)"),
        ({"high": 95.0, "low": 96.0, "open": None}, "high_below_low", "high=95.0 < low=96.0"),
        ({"low": 101.0}, "low_above_open_close", "low=101.0 > min(open=100.0, close=105.0)"),
        ({"high": 104.0}, "high_below_open_close", "high=104.0 < max(open=100.0, close=105.0)"),
        ({"date": dt.date(2026, 11, 27)}, "future_date", "date=2026-11-27 > today=2026-11-26"),
    ],
)
def test_each_rule_quarantines_with_values(change, rule, detail):
    rows = make_rows({"date": dt.date(2019, 12, 31)}, change)
    result = validate_rows(rows, today=TODAY)
    reject = only_reject(result)
    assert (reject["line"], reject["raw"], reject["rule"]) == (3, "row 1", rule)
    assert f"{rule}: " in reject["detail"] and detail in reject["detail"]
    assert result.valid.get_column("line").to_list() == [2]


def test_empty_input_gives_empty_outputs():
    result = validate_rows(pl.DataFrame(schema=PARSED_SCHEMA), today=TODAY)
    assert (result.valid.height, result.quarantined.height) == (0, 0)
    assert dict(result.quarantined.schema) == REJECT_SCHEMA


def test_missing_open_high_low_are_not_judged():
    rows = make_rows({"open": None, "high": None, "low": None, "volume": None})
    assert validate_rows(rows, today=TODAY).valid.height == 1


def test_limits_are_settable():
    rows = make_rows({}, {"date": dt.date(2020, 1, 2), "high": 130.0, "close": 125.0})
    assert validate_rows(rows, today=TODAY).valid.height == 2  # under the default limits
    result = validate_rows(rows, today=TODAY, limits=ValueLimits(max_price=120.0))
    assert result.valid.get_column("line").to_list() == [2]
    reject = only_reject(result)
    assert reject["rule"] == "price_above_limit"
    assert "high=130.0, close=125.0 (limit 120)" in reject["detail"]
    with pytest.raises(ValueError, match="max_price must be a finite number above 0"):
        ValueLimits(max_price=math.inf)


def test_limits_come_from_the_environment(monkeypatch, tmp_path):
    """Read at the entry points (a command, a flow) through limits_from_env, then passed down."""
    from seqlab.config import Settings
    from seqlab.ingest.options import IngestOptions, limits_from_env

    def limits() -> ValueLimits:
        sources, values = limits_from_env()
        return IngestOptions.from_settings(Settings(tmp_path / "w", tmp_path), "ETH",
                                           sources=sources, values=values).values

    assert limits() == ValueLimits()
    monkeypatch.setenv("SEQLAB_MAX_PRICE", "5e5")
    monkeypatch.setenv("SEQLAB_MAX_AMOUNT", "1e13")
    assert limits() == ValueLimits(max_price=5e5, max_amount=1e13)


def test_row_breaking_several_rules_is_quarantined_once_naming_all():
    rows = make_rows(
        {"open": 0.0, "volume": -1.0, "high": 2e9, "low": 3e9, "market_cap": 1e16,
         "date": dt.date(2030, 1, 1)}
    )  # fmt: skip
    reject = only_reject(validate_rows(rows, today=TODAY))
    assert reject["rule"] == "non_positive_price"
    named = [part.split(":")[0] for part in reject["detail"].split("; ")]
    assert named == [
        "non_positive_price",
        "negative_volume",
        "price_above_limit",
        "amount_above_limit",
        "high_below_low",
        "low_above_open_close",  # low=3e9 > open=0
        "future_date",
    ]


def test_ohlc_comparisons_tolerate_float_noise_only():
    noisy = {"high": 105.0 * (1 - 1e-12), "low": 100.0 * (1 + 1e-12)}
    wrong = {"high": 105.0 * (1 - 1e-6)}
    result = validate_rows(make_rows(noisy, {**wrong, "date": dt.date(2020, 1, 2)}), today=TODAY)
    assert result.valid.get_column("line").to_list() == [2]
    assert only_reject(result)["rule"] == "high_below_open_close"


def test_future_date_defaults_to_utc_today():
    today = dt.datetime.now(dt.UTC).date()
    rows = make_rows({"date": today}, {"date": today + dt.timedelta(days=1)})
    result = validate_rows(rows)
    assert result.valid.get_column("date").to_list() == [today]
    assert only_reject(result)["rule"] == "future_date"


def test_duplicate_keeps_candle_nearest_after_midnight():
    day = dt.date(2022, 7, 1)
    rows = make_rows(
        {"date": day, "time_of_day_s": 14_400, "close": 104.0},
        {"date": day, "time_of_day_s": 46_800, "close": 103.0},
        {"date": day, "time_of_day_s": 0},
    )
    result = validate_rows(rows, today=TODAY)
    assert result.valid.get_column("line").to_list() == [4]
    assert result.quarantined.get_column("line").to_list() == [2, 3]
    assert set(result.quarantined.get_column("rule")) == {"duplicate_date"}
    first = result.quarantined.row(0, named=True)["detail"]
    assert "at 04:00:00 UTC duplicates line 4 at 00:00:00 UTC" in first
    assert "values conflict (close)" in first


def test_duplicate_tie_goes_to_earliest_line_and_reports_identical_values():
    rows = make_rows({"line": 9}, {"line": 5}, {"line": 7, "open": 101.0})
    result = validate_rows(rows, today=TODAY)
    assert result.valid.get_column("line").to_list() == [5]
    details = dict(result.quarantined.select("line", "detail").iter_rows())
    assert details[9].endswith(
        "duplicates line 5 at 00:00:00 UTC, kept as nearer 00:00 UTC; values identical"
    )
    assert details[7].endswith("values conflict (open)")


def test_broken_rows_do_not_compete_for_a_date():
    rows = make_rows({"time_of_day_s": 0, "open": 0.0}, {"time_of_day_s": 14_400})
    result = validate_rows(rows, today=TODAY)
    assert result.valid.get_column("line").to_list() == [3]
    reject = only_reject(result)
    assert reject["rule"] == "non_positive_price" and "duplicate" not in reject["detail"]


def test_same_date_for_different_symbols_is_not_a_duplicate():
    rows = make_rows({"symbol": "ETH"}, {"symbol": "BTC"})
    assert validate_rows(rows, today=TODAY).valid.height == 2


def test_schema_breaches_raise_instead_of_quarantining():
    with pytest.raises(ValueError, match=r"lack column\(s\) \['raw'\]"):
        validate_rows(make_rows({}).drop("raw"), today=TODAY)
    with pytest.raises(ValueError, match="column 'date' failed not_nullable at line 3"):
        validate_rows(make_rows({}, {"date": None}), today=TODAY)
    with pytest.raises(ValueError, match="PARSED_SCHEMA types"):
        validate_rows(make_rows({}).with_columns(pl.lit("abc").alias("close")), today=TODAY)


def test_canonical_model_is_strict_and_unique_per_symbol_date():
    valid = validate_rows(make_rows({}), today=TODAY).valid.drop("line")
    with pytest.raises(SchemaErrors, match="unique"):
        CanonicalPrices.validate(pl.concat([valid, valid]), lazy=True)
    with pytest.raises(SchemaErrors, match="extra"):
        CanonicalPrices.validate(valid.with_columns(pl.lit(1).alias("extra")), lazy=True)


PRICES = st.sampled_from([None, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 1e9, 1e308])
ROW = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(["ETH", "BTC"]),
        "date": st.sampled_from([dt.date(2020, 1, 1), dt.date(2020, 1, 2), dt.date(2027, 1, 1)]),
        "open": PRICES,
        "high": PRICES,
        "low": PRICES,
        "close": PRICES,
        "volume": st.sampled_from([None, -1.0, 0.0, 5.0]),
        "market_cap": st.sampled_from([None, 0.0, 9.0, 1e15]),
        "volume_base": st.sampled_from([None, -2.0, 1.0]),
        "time_of_day_s": st.sampled_from([None, 0, 14_400, 46_800]),
    }
)


def expected_broken(row: dict) -> list[str]:
    """A plain-Python reading of the rules, as an independent oracle."""
    o, h, lo, c = row["open"], row["high"], row["low"], row["close"]
    broken = []
    if any(v is not None and v <= 0 for v in (o, h, lo)) or c is None or c <= 0:
        broken.append("non_positive_price")
    amounts = [row[k] for k in ("volume", "market_cap", "volume_base")]
    if any(v is not None and v < 0 for v in amounts):
        broken.append("negative_volume")
    if any(v is not None and v >= 1e9 for v in (o, h, lo, c)):
        broken.append("price_above_limit")
    if any(v is not None and v >= 1e15 for v in amounts):
        broken.append("amount_above_limit")
    present = [v for v in (o, c) if v is not None]
    if h is not None and lo is not None and h < lo:
        broken.append("high_below_low")
    if lo is not None and present and lo > min(present):
        broken.append("low_above_open_close")
    if h is not None and present and h < max(present):
        broken.append("high_below_open_close")
    if row["date"] > TODAY:
        broken.append("future_date")
    return broken


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ROW, min_size=1, max_size=25))
def test_random_rows_match_the_plain_python_reading(records):
    rows = make_rows(*records)
    result = validate_rows(rows, today=TODAY)
    assert result.valid.height + result.quarantined.height == rows.height
    assert result.valid.select("symbol", "date").is_unique().all()

    rejects = {r["line"]: r for r in result.quarantined.iter_rows(named=True)}
    claims: dict[tuple, list[tuple]] = {}
    for index, record in enumerate(records):
        line = index + 2
        broken = expected_broken(record)
        if broken:
            assert rejects[line]["rule"] == broken[0]
            named = [part.split(":")[0] for part in rejects[line]["detail"].split("; ")]
            assert named == broken
        else:
            rank = (record["time_of_day_s"] or 0, line)
            claims.setdefault((record["symbol"], record["date"]), []).append(rank)
    kept = {min(ranks)[1] for ranks in claims.values()}
    assert set(result.valid.get_column("line")) == kept
    losers = {rank[1] for ranks in claims.values() for rank in ranks} - kept
    assert {line for line, r in rejects.items() if r["rule"] == "duplicate_date"} == losers


def test_one_million_rows_validate_quickly():
    n = 1_000_000
    rng = np.random.default_rng(7)
    close = rng.uniform(1, 4000, n)
    position = pl.int_range(n, eager=True)
    rows = pl.DataFrame(
        {
            "symbol": "S" + (position // 3000).cast(pl.String),
            "date": pl.select(
                pl.lit(dt.date(2015, 1, 1)) + pl.duration(days=position % 3000)
            ).to_series(),
            "open": close,
            "high": close * 1.05,
            "low": np.where(rng.random(n) < 0.01, -1.0, close * 0.95),
            "close": close,
            "volume": close * 1000,
            "market_cap": None,
            "volume_base": None,
            "line": position + 2,
            "raw": "x",
            "time_of_day_s": None,
        }
    ).cast(PARSED_SCHEMA)
    started = time.perf_counter()
    result = validate_rows(rows, today=TODAY)
    elapsed = time.perf_counter() - started
    bad = int((rows.get_column("low") < 0).sum())
    assert result.quarantined.height == bad and result.valid.height == n - bad
    assert elapsed < 10, f"1M rows took {elapsed:.1f}s"  # ~0.6 s measured; slack for busy CI


# Real files, through the real parser.


def parse_real(path) -> pl.DataFrame:
    from seqlab.ingest.parse import parse_source
    from seqlab.ingest.sources import read_sources

    [raw] = read_sources(str(path))
    return parse_source(raw, symbol="ETH").rows


def test_gemini_first_day_with_zero_open_and_low_is_quarantined(real_data_dir):
    rows = parse_real(
        real_data_dir / "eth_daily_cryptodatadownload_gemini_2016-05-09_2022-11-11.csv"
    )
    result = validate_rows(rows, today=TODAY)
    reject = only_reject(result)
    assert reject["rule"] == "non_positive_price"
    assert reject["detail"] == "non_positive_price: open=0.0, low=0.0"
    [first_day] = rows.filter(pl.col("line") == reject["line"]).get_column("date")
    assert first_day == dt.date(2016, 5, 9)
    assert result.valid.height == rows.height - 1 == 2377


def test_gemini_nobanner_keeps_one_candle_per_date(real_data_dir):
    path = (
        real_data_dir
        / "extra"
        / "eth_daily_cryptodatadownload_gemini_nobanner_2016-05-09_2025-03-27.csv"
    )
    rows = parse_real(path)
    assert (rows.height, rows.get_column("date").n_unique()) == (3600, 3245)
    result = validate_rows(rows, today=TODAY)

    counts = dict(result.quarantined.group_by("rule").len().iter_rows())
    assert counts == {"duplicate_date": 355, "non_positive_price": 1}
    # Every date but the broken first day (2016-05-09) is kept exactly once.
    assert result.valid.height == 3244
    assert result.valid.get_column("date").n_unique() == 3244
    kept = result.valid.join(rows.select("line", "time_of_day_s"), on="line")
    hours = kept.group_by(
        pl.when(pl.col("date") < dt.date(2022, 1, 15))
        .then(pl.lit("old"))
        .when(pl.col("date") <= dt.date(2022, 6, 30))
        .then(pl.lit("04 vs 13"))
        .when(pl.col("date") <= dt.date(2023, 1, 4))
        .then(pl.lit("04 vs 00"))
        .otherwise(pl.lit("new"))
        .alias("era")
    ).agg((pl.col("time_of_day_s").unique() // 3600).alias("hour"))
    assert {era: list(h) for era, h in hours.iter_rows()} == {
        "old": [4],
        "04 vs 13": [4],
        "04 vs 00": [0],
        "new": [0],
    }
    dropped = result.quarantined.filter(pl.col("rule") == "duplicate_date")
    assert dropped.get_column("detail").str.contains("values conflict").all()


def test_coincodex_rows_are_all_valid(real_data_dir):
    rows = parse_real(real_data_dir / "eth_daily_coincodex_2015-08-08_2025-08-08.csv")
    result = validate_rows(rows, today=TODAY)
    assert (result.valid.height, result.quarantined.height) == (3654, 0)


def test_kaggle_float32_noise_is_not_quarantined(real_data_dir):
    rows = parse_real(real_data_dir / "eth_daily_kaggle_coin_Ethereum_2015-08-08_2021-07-06.csv")
    assert validate_rows(rows, today=TODAY).valid.height == 2160
