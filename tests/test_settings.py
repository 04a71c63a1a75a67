"""Every SEQLAB_* variable is parsed and checked in one place (seqlab.config): a bad value is
one line naming the variable, on every command, before anything runs (issue 23, item 8)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from seqlab.cli import app
from seqlab.config import EnvironmentSettings, Settings, SettingsError, parse_memory_limit
from seqlab.ingest.fetch import SourceLimits

BAD = [
    ("SEQLAB_LOCK_TIMEOUT_S", "abc", "valid number"),
    ("SEQLAB_LOCK_TIMEOUT_S", "-5", "greater than 0"),
    ("SEQLAB_LOCK_TIMEOUT_S", "nan", "finite number"),
    ("SEQLAB_URL_DEADLINE_S", "-1", "greater than 0"),
    ("SEQLAB_URL_DEADLINE_S", "0", "greater than 0"),
    ("SEQLAB_URL_DEADLINE_S", "nan", "finite number"),
    ("SEQLAB_URL_DEADLINE_S", "inf", "finite number"),
    ("SEQLAB_SOURCE_MAX_BYTES", "10MB", "valid integer"),
    ("SEQLAB_ALLOW_PRIVATE_URLS", "maybe", "valid boolean"),
    ("SEQLAB_MAX_PRICE", "-1", "greater than 0"),
    ("SEQLAB_QUERY_MEMORY_LIMIT", "lots", "not a memory size"),
    ("SEQLAB_QUERY_MEMORY_LIMIT", "0GB", "not a memory size"),
    ("SEQLAB_FUSED_WARPS", "four", "valid integer"),
]


@pytest.mark.parametrize(("variable", "value", "why"), BAD)
def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch, variable, value, why) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=why) as refused:
        Settings.from_env()
    assert str(refused.value).startswith(f"{variable}={value!r} is refused")


@pytest.mark.parametrize("command", [["validations"], ["query", "select 1"],
                                     ["predict", "best"], ["report"], ["ingest", "x.csv"]])
def test_every_command_refuses_a_bad_variable_in_one_line(monkeypatch, tmp_path, command) -> None:
    monkeypatch.setenv("SEQLAB_LOCK_TIMEOUT_S", "abc")
    monkeypatch.setenv("SEQLAB_WAREHOUSE", str(tmp_path / "w.duckdb"))
    done = CliRunner().invoke(app, command)
    assert done.exit_code == 2 and "Traceback" not in done.output
    assert done.output.strip().splitlines() == [
        "error: SEQLAB_LOCK_TIMEOUT_S='abc' is refused: Input should be a valid number, "
        "unable to parse string as a number"]
    assert not (tmp_path / "w.duckdb").exists()


def test_good_values_and_defaults(monkeypatch, tmp_path) -> None:
    assert EnvironmentSettings.load({}) == EnvironmentSettings()
    monkeypatch.setenv("SEQLAB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SEQLAB_LOCK_TIMEOUT_S", " 2.5 ")
    monkeypatch.setenv("SEQLAB_OUTPUT_DIR", "")  # empty: the default
    monkeypatch.setenv("SEQLAB_URL_DEADLINE_S", "12")
    settings = Settings.from_env()
    assert settings == Settings(tmp_path / "seqlab.duckdb", tmp_path / "output", 2.5)
    assert SourceLimits.from_env().deadline_s == 12.0
    assert Settings.from_env(tmp_path / "x.duckdb").warehouse == tmp_path / "x.duckdb"


def test_memory_sizes_parse_as_duckdb_reads_them() -> None:
    assert parse_memory_limit("2GiB") == 2 * 2**30
    assert parse_memory_limit("512 MB") == 512 * 10**6
    for bad in ("", "-1GB", "nanGB", "infGB", "2 parsecs"):
        with pytest.raises(ValueError, match="not a memory size"):
            parse_memory_limit(bad)
