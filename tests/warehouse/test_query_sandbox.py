"""`seqlab query` is read-only: writes, ATTACH, extensions and file access are refused."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from seqlab.cli import app
from seqlab.warehouse import WarehouseQueryError, query
from tests.conftest import ingest_coincodex, run_user_query


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return ingest_coincodex(tmp_path_factory.mktemp("sandbox"))


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM prices",
        "UPDATE prices SET close = 0",
        "INSERT INTO prices SELECT * FROM prices",
        "CREATE TABLE stolen AS SELECT 1",
        "DROP TABLE prices",
        "ATTACH '/tmp/other.duckdb' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "COPY prices TO '/tmp/prices_copy.csv'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/etc/*')",
        "SET enable_external_access = true",
        "SELECT 1; DELETE FROM prices",
    ],
)
def test_writes_attach_extensions_and_files_are_refused(warehouse, sql):
    with pytest.raises(WarehouseQueryError, match=str(warehouse)):
        run_user_query(warehouse, sql)
    assert query(warehouse, "SELECT count(*) n FROM prices")["n"][0] == 3654


def test_reads_work_in_every_format(warehouse):
    runner = CliRunner()
    sql = "SELECT min(date) first, max(date) last, count(*) n FROM prices"
    table = runner.invoke(app, ["query", sql, "--warehouse", str(warehouse)])
    assert table.exit_code == 0 and "3654" in table.stdout and "2015-08-08" in table.stdout
    as_json = runner.invoke(app, ["query", sql, "--warehouse", str(warehouse), "--format", "json"])
    assert json.loads(as_json.stdout) == [{"first": "2015-08-08", "last": "2025-08-08", "n": 3654}]
    as_csv = runner.invoke(app, ["query", sql, "--warehouse", str(warehouse), "--format", "csv"])
    assert as_csv.stdout.splitlines() == ["first,last,n", "2015-08-08,2025-08-08,3654"]


def test_refusal_is_a_clear_cli_error(warehouse):
    result = CliRunner().invoke(app, ["query", "DROP TABLE prices", "--warehouse", str(warehouse)])
    assert result.exit_code == 2
    assert "query refused or failed" in result.stderr and "DROP" in result.stderr
