"""``seqlab ingest`` and ``seqlab sample-data`` as a user runs them: exit codes, JSON, messages.

Most tests drive the typer app in-process (CliRunner); the sample-data round trip runs the
installed console script in a subprocess, the way ``make run`` does.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from seqlab.cli import app
from seqlab.warehouse import current_data_version, latest_gate, load_ingestions, load_prices
from tests.conftest import serve_http

COINCODEX = "eth_daily_coincodex_2015-08-08_2025-08-08.csv"
YAHOO = "eth_daily_yahoo_2017-11-09_2024-07-26.csv"
YAHOO_LEGACY = "extra/eth_daily_yahoo_legacy_2015-08-07_2021-11-24.csv"
SUMMARY_KEYS = {
    "source", "sha256", "layout", "rows_read", "rows_valid", "rows_quarantined",
    "rows_inserted", "rows_updated", "data_version",
}  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> dict[str, Path]:
    return {"warehouse": tmp_path / "w.duckdb", "out": tmp_path / "out"}


def run_ingest(home: dict[str, Path], source: str, *extra: str):
    args = ["ingest", source, "--warehouse", str(home["warehouse"]), "--out", str(home["out"])]
    return CliRunner().invoke(app, [*args, *extra])


def json_of(result) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout  # exactly one JSON object, nothing else on stdout
    return json.loads(lines[0])


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- one file -----------------------------------------------------------------------------


def test_json_summary_of_a_real_file(home, real_data_dir):
    path = real_data_dir / COINCODEX
    result = run_ingest(home, str(path), "--json")
    assert result.exit_code == 0, result.output
    summary = json_of(result)
    assert SUMMARY_KEYS <= summary.keys()
    assert (summary["source"], summary["sha256"], summary["layout"]) == (
        str(path), sha256_of(path), "coincodex"
    )  # fmt: skip
    assert [summary[k] for k in ("rows_read", "rows_valid", "rows_quarantined")] == [3654] * 2 + [0]
    assert (summary["rows_inserted"], summary["rows_updated"]) == (3654, 0)
    assert summary["data_version"] == current_data_version(home["warehouse"], "ETH")
    assert summary["gate_passed"] is True
    assert Path(summary["docs_path"]).is_file()  # GX Data Docs under --out
    assert Path(summary["docs_path"]).is_relative_to(home["out"])


def test_text_summary_without_json(home, real_data_dir):
    result = run_ingest(home, str(real_data_dir / YAHOO))
    assert result.exit_code == 0, result.output
    assert "layout yahoo" in result.stdout and "rows read 2452" in result.stdout
    assert "2452 inserted" in result.stdout and "dataset gate passed" in result.stdout


def test_quarantined_rows_still_exit_zero(home, real_data_dir):
    result = run_ingest(home, str(real_data_dir / YAHOO_LEGACY), "--json", "--symbol", "ETH-Y")
    assert result.exit_code == 0, result.output
    summary = json_of(result)
    assert (summary["rows_read"], summary["rows_valid"], summary["rows_quarantined"]) == (
        2302, 2298, 4,
    )  # fmt: skip
    assert summary["quarantine_rules"] == {"null_row": 4}
    assert load_prices(home["warehouse"], "ETH-Y").height == 2298


def test_warehouse_from_the_environment(tmp_path, real_data_dir):
    warehouse = tmp_path / "env" / "from_env.duckdb"
    env = {"SEQLAB_WAREHOUSE": str(warehouse), "SEQLAB_OUTPUT_DIR": str(tmp_path / "o")}
    result = CliRunner().invoke(app, ["ingest", str(real_data_dir / YAHOO), "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json_of(result)["data_version"] == current_data_version(warehouse, "ETH")


# --- failures -----------------------------------------------------------------------------


def test_unknown_layout_names_the_columns_found_and_expected(home, tmp_path):
    path = tmp_path / "prices_export.csv"
    path.write_text("Day;Ticker;Last Trade\n2024-01-01;ETH;2300.5\n")
    result = run_ingest(home, str(path), "--json")
    assert result.exit_code != 0
    message = result.stderr
    assert str(path) in message and "unknown layout" in message
    assert "['Day', 'Ticker', 'Last Trade']" in message  # the columns found
    for expected in ("coincodex: Start, End, Open", "coingecko: snapped_at, price", "generic"):
        assert expected in message
    assert not home["warehouse"].exists() or load_ingestions(home["warehouse"]).is_empty()


def test_missing_file_fails_naming_it(home, tmp_path):
    missing = tmp_path / "no_such_prices.csv"
    result = run_ingest(home, str(missing), "--json")
    assert result.exit_code != 0
    assert f"{missing}: no such file or folder" in result.stderr
    assert not home["warehouse"].exists()


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"], ids=["zero_bytes", "blank_lines"])
def test_empty_file_fails_naming_it(home, tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    result = run_ingest(home, str(path), "--json")
    assert result.exit_code != 0
    assert f"{path}: file is empty" in result.stderr
    assert not home["warehouse"].exists() or load_ingestions(home["warehouse"]).is_empty()


# --- folders and URLs ---------------------------------------------------------------------


def coincodex_until_july(real_data_dir: Path, folder: Path) -> Path:
    """The CoinCodex bytes without its 14 newest days (after 2025-07-25)."""
    header, *rows = (real_data_dir / COINCODEX).read_bytes().split(b"\n")
    older = [row for row in rows if row[:10] <= b"2025-07-25"]
    path = folder / "a_coincodex_older.csv"
    path.write_bytes(b"\n".join([header, *older]))
    return path


def test_folder_source_ingests_each_csv_in_name_order(home, tmp_path, real_data_dir):
    folder = tmp_path / "downloads"
    folder.mkdir()
    older = coincodex_until_july(real_data_dir, folder)
    newer = folder / "b_coincodex_newer.csv"
    shutil.copyfile(real_data_dir / COINCODEX, newer)
    (folder / "readme.txt").write_text("not a price file")

    result = run_ingest(home, str(folder), "--json")
    assert result.exit_code == 0, result.output
    payload = json_of(result)
    assert [f["source"] for f in payload["files"]] == [str(older), str(newer)]
    assert [f["sha256"] for f in payload["files"]] == [sha256_of(older), sha256_of(newer)]
    assert [(f["rows_inserted"], f["rows_updated"]) for f in payload["files"]] == [
        (3640, 0), (14, 0),
    ]  # fmt: skip
    assert (payload["rows_read"], payload["rows_inserted"], payload["errors"]) == (
        3640 + 3654, 3654, [],
    )  # fmt: skip
    assert payload["data_version"] == current_data_version(home["warehouse"], "ETH")


def test_folder_with_an_unreadable_file_stores_the_rest_and_fails(home, tmp_path, real_data_dir):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copyfile(real_data_dir / YAHOO, folder / "a_yahoo.csv")
    (folder / "b_broken.csv").write_text("what,is,this\n1,2,3\n")
    result = run_ingest(home, str(folder), "--json")
    assert result.exit_code != 0
    payload = json_of(result)
    assert [f["layout"] for f in payload["files"]] == ["yahoo"]
    assert len(payload["errors"]) == 1 and "b_broken.csv: unknown layout" in payload["errors"][0]
    assert "b_broken.csv: unknown layout" in result.stderr
    assert load_prices(home["warehouse"], "ETH").height == 2452


@pytest.fixture(scope="module")
def real_data_url(real_data_dir) -> Iterator[str]:
    """The real data folder served over HTTP on 127.0.0.1, on a free port, in a thread."""
    with serve_http(functools.partial(QuietHandler, directory=str(real_data_dir))) as url:
        yield url


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def test_url_source_is_downloaded_and_ingested(home, real_data_url, real_data_dir):
    url = f"{real_data_url}/{YAHOO}"
    result = run_ingest(home, url, "--json", "--allow-private-urls")  # the server is local
    assert result.exit_code == 0, result.output
    summary = json_of(result)
    assert (summary["source"], summary["layout"], summary["rows_read"]) == (url, "yahoo", 2452)
    assert summary["sha256"] == sha256_of(real_data_dir / YAHOO)
    assert load_ingestions(home["warehouse"])["source"].to_list() == [url]


def test_url_that_is_not_found_fails_naming_url_and_status(home, real_data_url):
    url = f"{real_data_url}/no_such_file.csv"
    result = run_ingest(home, url, "--json", "--allow-private-urls")
    assert result.exit_code != 0
    assert f"{url}: HTTP 404" in result.stderr


def test_url_on_this_machine_is_refused_unless_allowed(home, real_data_url, monkeypatch):
    url = f"{real_data_url}/{YAHOO}"
    monkeypatch.delenv("SEQLAB_ALLOW_PRIVATE_URLS", raising=False)
    refused = run_ingest(home, url)
    assert refused.exit_code == 2  # like any source that cannot be read
    assert f"error: {url}: 127.0.0.1 resolves to 127.0.0.1, a loopback address" in refused.stderr
    assert "refused unless --allow-private-urls or SEQLAB_ALLOW_PRIVATE_URLS=1" in refused.stderr
    assert not home["warehouse"].exists()
    monkeypatch.setenv("SEQLAB_ALLOW_PRIVATE_URLS", "1")  # the variable does what the flag does
    assert run_ingest(home, url).exit_code == 0


# --- symbols ------------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", ["../../../precious_dir", "", "ETH/USD", "-x"])
def test_a_symbol_that_is_not_a_plain_name_is_refused_before_anything_is_written(
    home, tmp_path, real_data_dir, symbol
):
    result = run_ingest(home, str(real_data_dir / YAHOO), f"--symbol={symbol}")
    assert result.exit_code == 2
    text = " ".join(line.strip("│ ") for line in result.output.splitlines())  # unbox
    assert f"Invalid value for '--symbol': symbol {symbol!r} is not allowed: use 1-64" in text
    assert sorted(p.name for p in tmp_path.rglob("*")) == []  # no warehouse, docs, or dirs


def test_run_refuses_a_path_symbol_before_starting_anything(tmp_path):
    result = CliRunner().invoke(app, ["run", "--symbol", "../x", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "Invalid value for '--symbol'" in result.output
    assert list(tmp_path.iterdir()) == []


# --- sample data, through the installed console script ------------------------------------


def seqlab_command() -> list[str]:
    script = Path(sys.executable).with_name("seqlab")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "seqlab.cli"]


def test_sample_data_then_ingest_passes_the_gate(tmp_path):
    folder = tmp_path / "sample"
    made = subprocess.run(
        [*seqlab_command(), "sample-data", str(folder)], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    assert "SYNTHETIC" in made.stdout
    [path] = folder.glob("*.csv")
    assert "synthetic" in path.name

    warehouse = tmp_path / "w.duckdb"
    ingested = subprocess.run(
        [*seqlab_command(), "ingest", str(path), "--symbol", "ETH-SYNTHETIC", "--json",
         "--warehouse", str(warehouse), "--out", str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ingested.returncode == 0, ingested.stderr
    summary = json.loads(ingested.stdout.strip().splitlines()[-1])
    assert summary["layout"] == "generic" and summary["rows_quarantined"] == 0
    assert summary["rows_valid"] == summary["rows_read"] > 3600  # ~3,650 days, a few gaps
    assert summary["gate_passed"] is True  # a stale-data warning is allowed, not a failure
    gate = latest_gate(warehouse, "ETH-SYNTHETIC")
    assert gate.passed and gate.data_version == summary["data_version"]
    assert set(gate.warnings) <= {"fresh_data", "no_long_gaps", "plausible_daily_returns"}

    as_eth = subprocess.run(
        [*seqlab_command(), "ingest", str(path), "--symbol", "ETH",
         "--warehouse", str(warehouse), "--out", str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert as_eth.returncode == 1
    assert "the file's own symbol is 'ETH-SYNTHETIC', not the requested symbol 'ETH'" in (
        as_eth.stderr
    )
    assert load_prices(warehouse, "ETH").is_empty()


def test_train_and_predict_check_the_symbol_too(tmp_path) -> None:
    runner = CliRunner()
    for command in (["train"], ["predict", "best"]):
        refused = runner.invoke(app, [*command, "--symbol", "../../x", "--warehouse",
                                      str(tmp_path / "w.duckdb")])
        assert refused.exit_code == 2 and "Traceback" not in refused.output, command
    assert not (tmp_path / "w.duckdb").exists()
