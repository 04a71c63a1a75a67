"""Dataset checks (Great Expectations 1.x) on a symbol's canonical prices."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from seqlab.checks.dataset import DatasetCheckConfig, DatasetValidation, check_dataset

LAST_DAY = dt.date(2025, 8, 8)  # the CoinCodex file's latest date
NAMES = [
    "enough_rows",
    "unique_dates",
    "increasing_dates",
    "close_within_low_high",
    "no_long_gaps",
    "plausible_daily_returns",
    "fresh_data",
]


def outcome(result: DatasetValidation, name: str):
    [found] = [o for o in result.outcomes if o.name == name]
    return found


def failed_names(result: DatasetValidation, severity: str | None = None) -> set[str]:
    return {o.name for o in result.failed(severity)}


def test_real_coincodex_prices_pass_every_expectation(coincodex_prices):
    today = LAST_DAY + dt.timedelta(days=5)
    result = check_dataset(coincodex_prices, symbol="ETH", today=today)
    assert result.passed and result.symbol == "ETH" and result.docs_path is None
    assert [o.name for o in result.outcomes] == NAMES
    assert [o.severity for o in result.outcomes] == ["critical"] * 4 + ["warning"] * 3
    assert failed_names(result) == set()
    assert outcome(result, "enough_rows").observed == "3654 rows (min 100)"
    assert outcome(result, "fresh_data").observed == (
        "latest date 2025-08-08 is 5 days before 2025-08-13 (max 30)"
    )


def test_stale_real_data_warns_without_failing_the_gate(coincodex_prices):
    result = check_dataset(coincodex_prices, symbol="ETH", today=dt.date(2026, 11, 26))
    assert result.passed
    assert failed_names(result) == {"fresh_data"}
    assert "475 days before 2026-11-26" in outcome(result, "fresh_data").observed


def test_broken_dataset_fails_the_gate_naming_the_expectations(coincodex_prices):
    head = coincodex_prices.head(60)
    bad_close = pl.when(pl.col("date") == dt.date(2015, 8, 20))
    broken = (
        pl.concat([head, head.slice(10, 2)])  # 2015-08-18 and -19 twice
        .with_columns(bad_close.then(pl.col("high") * 1.5).otherwise("close").alias("close"))
        .sort("date")
    )
    result = check_dataset(broken, symbol="ETH", today=LAST_DAY)
    assert not result.passed
    assert failed_names(result, "critical") == {
        "enough_rows",
        "unique_dates",
        "close_within_low_high",
    }
    assert outcome(result, "enough_rows").observed == "62 rows (min 100)"
    assert outcome(result, "unique_dates").observed == (
        "4 rows share a date with another row, e.g. 2015-08-18, 2015-08-19"
    )
    assert outcome(result, "close_within_low_high").observed.startswith(
        "1 rows with close outside [low, high], e.g. 2015-08-20 (33.33% of close outside)"
    )


def test_dates_out_of_order_fail_the_gate(coincodex_prices):
    shuffled = pl.concat([coincodex_prices.slice(200), coincodex_prices.head(200)])
    result = check_dataset(shuffled, symbol="ETH", today=LAST_DAY)
    assert not result.passed
    assert failed_names(result, "critical") == {"increasing_dates"}
    assert outcome(result, "increasing_dates").observed == (
        "1 row(s) dated before the row above, first 2015-08-08"
    )


def test_five_day_gap_warns_without_failing_the_gate(coincodex_prices):
    hole = pl.col("date").is_between(dt.date(2016, 3, 2), dt.date(2016, 3, 5))
    result = check_dataset(coincodex_prices.filter(~hole), symbol="ETH", today=LAST_DAY)
    assert result.passed
    assert failed_names(result) == {"no_long_gaps"}
    assert outcome(result, "no_long_gaps").observed == (
        "1 gap(s) > 3 days, longest 5 days from 2016-03-01"
    )


def test_implausible_jump_warns(coincodex_prices):
    spike = pl.col("date") == dt.date(2020, 3, 1)
    jumped = coincodex_prices.with_columns(
        pl.when(spike).then(pl.col(c) * 5).otherwise(c).alias(c) for c in ("high", "close")
    )
    result = check_dataset(jumped, symbol="ETH", today=LAST_DAY)
    assert result.passed
    assert failed_names(result) == {"plausible_daily_returns"}
    observed = outcome(result, "plausible_daily_returns").observed
    assert observed.startswith("2 daily close returns beyond ±75%, e.g. +")
    assert "on 2020-03-01" in observed and "-79% on 2020-03-02" in observed  # next day reverts


def test_thresholds_come_from_the_config(coincodex_prices):
    strict = DatasetCheckConfig(min_rows=5000, max_abs_daily_return=0.1)
    result = check_dataset(coincodex_prices, symbol="ETH", config=strict, today=LAST_DAY)
    assert not result.passed
    assert failed_names(result) == {"enough_rows", "plausible_daily_returns"}


def test_close_only_prices_are_judged_where_bounds_exist(coincodex_prices):
    close_only = coincodex_prices.with_columns(
        pl.lit(None, pl.Float64).alias(c) for c in ("open", "high", "low")
    )
    result = check_dataset(close_only, symbol="ETH", today=LAST_DAY)
    assert result.passed and failed_names(result) == set()


def test_missing_columns_raise(coincodex_prices):
    with pytest.raises(ValueError, match=r"lack column\(s\) \['low'\]"):
        check_dataset(coincodex_prices.drop("low"), symbol="ETH", today=LAST_DAY)


def test_data_docs_are_written(coincodex_prices, tmp_path):
    result = check_dataset(coincodex_prices, symbol="ETH", today=LAST_DAY, docs_dir=tmp_path)
    assert result.docs_path == tmp_path / "index.html"
    index = result.docs_path.read_text()
    assert "ETH_dataset" in index
    pages = list((tmp_path / "validations" / "ETH_dataset").rglob("*.html"))
    assert len(pages) == 1
    page = pages[0].read_text()
    assert all(column in page for column in ("gap_days", "close_outside_range", "age_days"))


def test_data_docs_accept_a_relative_folder(coincodex_prices, tmp_path, monkeypatch):
    # `make run` uses the default data/output/... which is relative to the working directory.
    from seqlab.checks.dataset import check_dataset

    monkeypatch.chdir(tmp_path)
    result = check_dataset(coincodex_prices, symbol="ETH", docs_dir=Path("data/docs"))
    assert result.docs_path == tmp_path / "data" / "docs" / "index.html"
    assert result.docs_path.is_file()
