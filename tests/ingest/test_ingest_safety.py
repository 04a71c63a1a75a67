"""Safe by default on the ingest side: symbols, the synthetic sample, and values that must
not pass (issue 13, findings 1, 3 and 9). URL sources have their own file, test_url_safety."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
import yaml
from polars.testing import assert_frame_equal

from seqlab.checks.dataset import data_docs_dir
from seqlab.config import Settings
from seqlab.features.sets import select_feature_columns
from seqlab.ingest.parse import SymbolMismatchError, parse_source
from seqlab.ingest.sources import RawSource
from seqlab.runners.ingest import IngestOptions, ingest_source
from seqlab.sample import SYNTHETIC_SYMBOL, SampleSpec, write_sample_csv
from seqlab.schemas.symbols import SymbolError, check_symbol, symbol_agrees
from seqlab.warehouse import (
    current_data_version,
    load_ingestions,
    load_prices,
    load_quarantine,
)
from tests.conftest import COINCODEX, REPO_ROOT

TODAY = date(2025, 8, 9)  # the day after the CoinCodex file's last row


def options(warehouse: Path, symbol: str, **kwargs) -> IngestOptions:
    return IngestOptions(symbol=symbol, warehouse=warehouse, today=TODAY, **kwargs)


def parse_file(path: Path, symbol: str):
    return parse_source(RawSource.from_bytes(str(path), path.read_bytes()), symbol=symbol)


# --- 1. the synthetic sample never lands under a real symbol -------------------------------


def test_sample_as_eth_is_refused_and_real_prices_stay_unchanged(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    [real] = ingest_source(str(COINCODEX), options(warehouse, "ETH"))
    assert real.rows_valid == 3654 and real.gate_passed
    before = load_prices(warehouse, "ETH")
    version = current_data_version(warehouse, "ETH")

    sample = write_sample_csv(tmp_path / "sample")
    with pytest.raises(SymbolMismatchError) as caught:
        ingest_source(str(sample), options(warehouse, "ETH"))
    assert str(caught.value) == (
        f"{sample}: the file's own symbol is 'ETH-SYNTHETIC', not the requested symbol 'ETH'; "
        "nothing was stored; to store it as what it says, use --symbol ETH-SYNTHETIC"
    )
    assert_frame_equal(load_prices(warehouse, "ETH"), before)
    assert current_data_version(warehouse, "ETH") == version
    assert load_ingestions(warehouse)["source"].to_list() == [str(COINCODEX)]  # no record

    [synthetic] = ingest_source(str(sample), options(warehouse, SYNTHETIC_SYMBOL))
    assert synthetic.rows_valid == synthetic.rows_read > 3600
    assert_frame_equal(load_prices(warehouse, "ETH"), before)


@pytest.mark.parametrize(
    ("file_symbol", "requested", "agrees"),
    [
        ("ETH", "ETH", True),
        ("ETH/USD", "ETH", True),  # CryptoDataDownload
        ("ETH-USD", "eth", True),  # yfinance's ticker row
        ("ETHUSD", "ETH", True),
        ("ETH", "ETH-GEMINI", True),  # a storage key of its own for one source
        ("ETH-SYNTHETIC", "ETH-SYNTHETIC", True),
        ("ETH-SYNTHETIC", "ETH", False),
        ("ETH-SYNTHETIC", "ETH-USD", False),
        ("ETH", "BTC", False),
        ("ETH", "ETHW", False),  # another asset, not a qualified ETH
        ("TUSD", "T", False),  # TrueUSD is not T priced in USD
    ],
)
def test_a_files_symbol_agrees_with_the_same_asset_or_a_qualified_key(
    file_symbol, requested, agrees
):
    assert symbol_agrees(file_symbol, requested) is agrees


@pytest.mark.parametrize(
    ("name", "holds"),
    [
        ("eth_daily_kaggle_coin_Ethereum_2015-08-08_2021-07-06.csv", "'ETH'"),
        ("eth_daily_cryptodatadownload_gemini_2016-05-09_2022-11-11.csv", "'ETH/USD'"),
        ("eth_daily_yfinance_multiheader_2020-01-01_2025-12-30.csv", "'ETH-USD'"),
    ],
)
def test_real_files_that_name_their_symbol_are_eth_and_not_btc(real_data_dir, name, holds):
    path = real_data_dir / name
    assert parse_file(path, "ETH").rejects.is_empty()
    with pytest.raises(SymbolMismatchError, match=f"own symbol is {holds}, not the requested symbol 'BTC'"):
        parse_file(path, "BTC")


def test_a_file_mixing_symbols_is_refused_naming_the_odd_ones(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("symbol,date,close\nETH,2024-01-01,1\nBTC,2024-01-02,2\n,2024-01-03,3\n")
    with pytest.raises(SymbolMismatchError, match=r"own symbol is 'BTC', not the requested"):
        parse_file(path, "ETH")


def test_the_sample_cannot_be_generated_under_a_real_symbol():
    with pytest.raises(ValueError, match="must say SYNTHETIC"):
        SampleSpec(symbol="ETH")
    assert SampleSpec(symbol="BTC-SYNTHETIC").symbol == "BTC-SYNTHETIC"


def test_no_deployment_ingests_the_sample_as_a_real_symbol():
    config = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d.get("parameters") or {} for d in config["deployments"]}
    assert "source" not in deployments["ingest-prices"]  # a source must be given
    for name, parameters in deployments.items():
        if "synthetic" in str(parameters.get("source", "")).lower():
            assert parameters.get("symbol") == SYNTHETIC_SYMBOL, name


# --- 3. one symbol rule, and data docs inside the output folder ----------------------------


@pytest.mark.parametrize(
    "symbol", ["ETH", "eth", "ETH-USD", "ETH-SYNTHETIC", "BTC.X", "ETH_1", "A", "X" * 64]
)
def test_symbols_of_letters_digits_dots_dashes_are_allowed(symbol):
    assert check_symbol(symbol) == symbol


@pytest.mark.parametrize(
    "symbol",
    ["", "../../../precious_dir", "..", ".", "ETH/USD", "a\\b", " ETH", "ETH ", "ETH\n",
     "-ETH", ".hidden", "ÉTH", "X" * 65, "ETH;DROP"],
)  # fmt: skip
def test_symbols_that_could_be_paths_or_flags_are_refused(symbol, tmp_path):
    with pytest.raises(SymbolError, match="is not allowed: use 1-64 letters, digits"):
        check_symbol(symbol)
    with pytest.raises(SymbolError):
        IngestOptions(symbol=symbol, warehouse=tmp_path / "w.duckdb")
    with pytest.raises(SymbolError):
        IngestOptions.from_settings(Settings(tmp_path / "w.duckdb", tmp_path / "out"), symbol)
    assert list(tmp_path.iterdir()) == []  # nothing was created


def test_data_docs_stay_inside_the_output_folder(tmp_path):
    out = tmp_path / "out"
    assert data_docs_dir(out, "ETH") == (out / "data_docs" / "ETH").resolve()
    with pytest.raises(SymbolError):
        data_docs_dir(out, "../../precious_dir")
    # A symlink planted where a symbol's docs go must not carry the site elsewhere.
    (out / "data_docs").mkdir(parents=True)
    (out / "data_docs" / "BTC").symlink_to(tmp_path)
    with pytest.raises(SymbolError, match="outside"):
        data_docs_dir(out, "BTC")


def test_the_ingest_flow_checks_its_symbol_before_reading(tmp_path):
    from seqlab.flows.ingest import ingest_prices

    with pytest.raises(SymbolError):
        ingest_prices.fn(str(tmp_path / "missing.csv"), symbol="../x",
                         warehouse=str(tmp_path / "w.duckdb"), output_dir=str(tmp_path / "out"))  # fmt: skip
    assert list(tmp_path.iterdir()) == []


# --- 9. every value stored is a finite number in range; NULL only for absent columns --------


def test_huge_values_and_text_cells_are_quarantined_and_all_keeps_open(tmp_path):
    warehouse = tmp_path / "w.duckdb"
    lines = ["date,open,high,low,close,volume"]
    lines += [f"2024-01-{day:02d},{100 + day},{110 + day},{90 + day},{105 + day},1000" for day in range(1, 29)]  # fmt: skip
    lines[5] = "2024-01-05,n/a,115,95,110,1000"
    lines[6] = "2024-01-06,106,1e308,96,111,1000"
    lines[7] = "2024-01-07,107,117,97,112,1e308"
    path = tmp_path / "prices.csv"
    path.write_text("\n".join(lines) + "\n")

    [summary] = ingest_source(str(path), options(warehouse, "ETH"))
    assert (summary.rows_read, summary.rows_valid, summary.rows_quarantined) == (28, 25, 3)
    assert summary.quarantine_rules == {
        "amount_above_limit": 1, "missing_value": 1, "price_above_limit": 1,
    }  # fmt: skip
    quarantine = load_quarantine(warehouse, summary.ingestion_id)
    assert dict(zip(quarantine["line"], quarantine["rule"], strict=True)) == {
        6: "missing_value", 7: "price_above_limit", 8: "amount_above_limit",
    }  # fmt: skip
    prices = load_prices(warehouse, "ETH")
    assert prices.select(pl.col("open", "high", "low", "close", "volume").null_count()).row(0) == (0,) * 5
    assert prices["high"].max() < 1e9 and prices["volume"].max() < 1e15
    assert select_feature_columns(prices, "all") == ["open", "high", "low", "close", "volume"]


def test_value_limits_are_settable_per_ingest(tmp_path):
    from seqlab.schemas.row_rules import ValueLimits

    path = tmp_path / "prices.csv"
    path.write_text("date,close\n2024-01-01,5.0\n2024-01-02,50.0\n")
    limits = ValueLimits(max_price=10.0)
    [summary] = ingest_source(str(path), options(tmp_path / "w.duckdb", "ETH", values=limits))
    assert (summary.rows_valid, summary.quarantine_rules) == (1, {"price_above_limit": 1})


# --- issue 23, item 9: dates before any crypto price, duplicate headers, a coin column -----


def test_a_year_0001_date_beside_real_prices_is_quarantined_and_the_gate_holds(tmp_path):
    text = COINCODEX.read_text(encoding="utf-8", errors="replace").splitlines()
    header, first = text[0], text[1]
    early = first.replace(first.split(",")[0], "0001-01-01", 1)
    probe = tmp_path / "eth_with_year_one.csv"
    probe.write_text("\n".join([header, early, *text[1:]]) + "\n", encoding="utf-8")
    warehouse = tmp_path / "w.duckdb"
    [summary] = ingest_source(str(probe), options(warehouse, "ETH"))
    assert summary.rows_valid == 3654 and summary.rows_quarantined == 1 and summary.gate_passed
    [reject] = load_quarantine(warehouse).to_dicts()
    assert reject["rule"] == "date_before_earliest" and reject["line"] == 2
    assert reject["detail"] == "date_before_earliest: date=0001-01-01 < earliest=2009-01-03"
    assert load_prices(warehouse, "ETH")["date"].min() == date(2015, 8, 8)


def test_a_header_naming_a_column_twice_is_refused_naming_it(tmp_path):
    probe = tmp_path / "twice.csv"
    probe.write_text("date,close,close\n2024-01-01,100,999\n2024-01-02,101,998\n")
    from seqlab.ingest.sources import SourceError

    with pytest.raises(SourceError) as refused:
        parse_file(probe, "ETH")
    assert str(refused.value) == (
        f"{probe}: the header names 'close' 2 times (columns 2, 3); seqlab cannot tell which "
        "is the close: rename or remove the others")


def test_a_coin_column_is_read_as_the_files_symbol(tmp_path):
    probe = tmp_path / "coin.csv"
    probe.write_text("date,coin,close\n2024-01-01,BTC,42000\n2024-01-02,BTC,43000\n")
    with pytest.raises(SymbolMismatchError, match="the file's own symbol is 'BTC'"):
        parse_file(probe, "ETH")
    assert parse_file(probe, "BTC").rows.height == 2


# --- issue 23, item 9: `seqlab sample-data` never overwrites or writes through a link -------


def test_sample_data_refuses_an_existing_file_and_a_link(tmp_path):
    from typer.testing import CliRunner

    from seqlab.cli import app

    mine = tmp_path / "prices.csv"
    mine.write_text("my prices")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    link = tmp_path / "link.csv"
    link.symlink_to(victim)
    for target, why in ((mine, "already exists"), (link, "already exists")):
        done = CliRunner().invoke(app, ["sample-data", str(target)])
        assert done.exit_code == 2 and "Traceback" not in done.output
        assert done.stderr.strip() == (f"error: {target} {why}; seqlab sample-data writes only "
                                       "a new file: remove it or give another path")
    assert mine.read_text() == "my prices" and victim.read_text() == "keep"
    fresh = CliRunner().invoke(app, ["sample-data", str(tmp_path / "new.csv")])
    assert fresh.exit_code == 0 and (tmp_path / "new.csv").read_text().startswith("symbol,date")
